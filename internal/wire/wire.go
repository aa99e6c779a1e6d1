// Package wire defines coffer's storage-server HTTP protocol (docs/protocol.md):
// the routes, their strict parsing, Range headers, listings and error codes.
//
// Server and client both use it, so a request the client can build is
// exactly a request the server accepts, and nothing else is.
package wire

import (
	"errors"
	"fmt"
	"strings"

	"github.com/coffer-backup/coffer/internal/storage"
)

// Version is the protocol version, the first segment of every path.
const Version = "v1"

// Paths and headers of the protocol.
const (
	// EnrollPath is the only route that answers without a client certificate.
	EnrollPath = "/" + Version + "/enroll"
	reposPath  = "/" + Version + "/repos/"

	// HeaderError carries the error code of a failed request (also on HEAD,
	// which has no body).
	HeaderError = "Coffer-Error"
	// HeaderContentSHA256 is the hex SHA-256 of an object's content: sent by
	// the client on PUT (the server refuses the upload if it differs) and
	// returned by the server on HEAD and GET.
	HeaderContentSHA256 = "Coffer-Content-Sha256"
	// HeaderReceived is the time the server stored the object, RFC 3339 UTC
	// with nanoseconds. Clients cannot set it.
	HeaderReceived = "Coffer-Received"

	// ListContentType is the media type of listings: JSON lines (see Entry).
	ListContentType = "application/x-ndjson"
	// ErrorContentType is the media type of error bodies (see ErrorBody).
	ErrorContentType = "application/json"
)

// Limits of names. Object names follow storage.ValidateHandle.
const (
	MaxRepoLen   = 64
	MaxClientLen = 63
	// MaxRequestURI bounds the request target before any parsing: the longest
	// valid target is /v1/repos/ + 64 + / + kind + / + 128 characters.
	MaxRequestURI = 256
)

// Op is what a request asks for.
type Op int

// The operations. OpInvalid is never returned with a nil error.
const (
	OpInvalid    Op = iota
	OpEnroll        // POST /v1/enroll
	OpCreateRepo    // POST /v1/repos/{repo}
	OpStatRepo      // HEAD /v1/repos/{repo}
	OpList          // GET  /v1/repos/{repo}/{kind}/
	OpStat          // HEAD /v1/repos/{repo}/{kind}/{name}
	OpLoad          // GET  /v1/repos/{repo}/{kind}/{name}
	OpSave          // PUT  /v1/repos/{repo}/{kind}/{name}
	OpRemove        // DELETE /v1/repos/{repo}/{kind}/{name}
)

var opNames = [...]string{"invalid", "enroll", "create-repo", "stat-repo", "list", "stat", "load", "save", "remove"}

// String returns a short name for logs.
func (o Op) String() string {
	if o < 0 || int(o) >= len(opNames) {
		return fmt.Sprintf("op(%d)", int(o))
	}
	return opNames[o]
}

// Route is a parsed, validated request target.
type Route struct {
	Op   Op
	Repo string       // set for every op but OpEnroll
	Kind storage.Kind // set for OpList and the object ops
	Name string       // set for the object ops
}

// Handle returns the storage handle of an object route.
func (r Route) Handle() storage.Handle { return storage.Handle{Kind: r.Kind, Name: r.Name} }

// Sentinel errors of request parsing, besides storage.ErrInvalidName for
// names that are well placed but not valid.
var (
	// ErrNoRoute: the path is not one of the protocol's routes.
	ErrNoRoute = errors.New("no such route")
	// ErrMethod: the route exists but not with this method.
	ErrMethod = errors.New("method not allowed")
)

// ParseRequest parses a request's method and raw request target (the
// request line's target, http.Request.RequestURI, never the percent-decoded
// path). Only the bytes [a-z0-9_/-] may appear, so percent-encoding, dots,
// NUL, backslashes, queries and absolute-form targets are refused before
// any name is looked at: there is nothing to decode and nothing to clean.
func ParseRequest(method, target string) (Route, error) {
	if len(target) > MaxRequestURI {
		return Route{}, fmt.Errorf("%w: request target of %d bytes", storage.ErrInvalidName, len(target))
	}
	if !strings.HasPrefix(target, "/") {
		return Route{}, fmt.Errorf("%w: target does not start with /", ErrNoRoute)
	}
	for i := 0; i < len(target); i++ {
		if !pathByte(target[i]) {
			return Route{}, fmt.Errorf("%w: byte %#02x at %d of the request target", storage.ErrInvalidName, target[i], i)
		}
	}
	if target == EnrollPath {
		if method != "POST" {
			return Route{}, fmt.Errorf("%s %s: %w", method, target, ErrMethod)
		}
		return Route{Op: OpEnroll}, nil
	}
	rest, ok := strings.CutPrefix(target, reposPath)
	if !ok {
		return Route{}, ErrNoRoute
	}
	parts := strings.Split(rest, "/")
	if err := ValidateRepo(parts[0]); err != nil {
		return Route{}, err
	}
	r := Route{Repo: parts[0]}
	switch len(parts) {
	case 1: // /v1/repos/{repo}
		switch method {
		case "POST":
			r.Op = OpCreateRepo
		case "HEAD":
			r.Op = OpStatRepo
		default:
			return Route{}, fmt.Errorf("%s on a repository: %w", method, ErrMethod)
		}
		return r, nil
	case 3: // /v1/repos/{repo}/{kind}/ or /v1/repos/{repo}/{kind}/{name}
	default:
		return Route{}, fmt.Errorf("%w: %d path segments", ErrNoRoute, len(parts)+2)
	}
	r.Kind = storage.Kind(parts[1])
	if !storage.ValidKind(r.Kind) {
		return Route{}, fmt.Errorf("%w: unknown kind %q", storage.ErrInvalidName, parts[1])
	}
	if parts[2] == "" {
		if method != "GET" {
			return Route{}, fmt.Errorf("%s on a listing: %w", method, ErrMethod)
		}
		r.Op = OpList
		return r, nil
	}
	r.Name = parts[2]
	if err := storage.ValidateHandle(r.Handle()); err != nil {
		return Route{}, err
	}
	switch method {
	case "HEAD":
		r.Op = OpStat
	case "GET":
		r.Op = OpLoad
	case "PUT":
		r.Op = OpSave
	case "DELETE":
		r.Op = OpRemove
	default:
		return Route{}, fmt.Errorf("%s on an object: %w", method, ErrMethod)
	}
	return r, nil
}

func pathByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '/'
}

// ValidateRepo checks a repository name: 1 to MaxRepoLen characters of
// [a-z0-9-_]. Errors wrap storage.ErrInvalidName.
func ValidateRepo(name string) error {
	if len(name) == 0 || len(name) > MaxRepoLen {
		return fmt.Errorf("%w: repository name length %d", storage.ErrInvalidName, len(name))
	}
	if !plainName(name) {
		return fmt.Errorf("%w: repository name %q", storage.ErrInvalidName, name)
	}
	return nil
}

// ValidateClientName checks a client name as the server uses it: a
// directory name and the subject of a certificate. 1 to MaxClientLen
// characters of [a-z0-9-_.], starting with a letter or digit, without "..".
// Errors wrap storage.ErrInvalidName.
func ValidateClientName(name string) error {
	if len(name) == 0 || len(name) > MaxClientLen {
		return fmt.Errorf("%w: client name length %d", storage.ErrInvalidName, len(name))
	}
	c := name[0]
	if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9') || strings.Contains(name, "..") {
		return fmt.Errorf("%w: client name %q", storage.ErrInvalidName, name)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return fmt.Errorf("%w: client name %q", storage.ErrInvalidName, name)
		}
	}
	return nil
}

func plainName(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// RepoPath returns the path of a repository, after validating its name.
func RepoPath(repo string) (string, error) {
	if err := ValidateRepo(repo); err != nil {
		return "", err
	}
	return reposPath + repo, nil
}

// ListPath returns the path of a listing of kind in repo.
func ListPath(repo string, kind storage.Kind) (string, error) {
	if err := ValidateRepo(repo); err != nil {
		return "", err
	}
	if !storage.ValidKind(kind) {
		return "", fmt.Errorf("%w: unknown kind %q", storage.ErrInvalidName, kind)
	}
	return reposPath + repo + "/" + string(kind) + "/", nil
}

// ObjectPath returns the path of object h in repo.
func ObjectPath(repo string, h storage.Handle) (string, error) {
	if err := ValidateRepo(repo); err != nil {
		return "", err
	}
	if err := storage.ValidateHandle(h); err != nil {
		return "", err
	}
	return reposPath + repo + "/" + string(h.Kind) + "/" + h.Name, nil
}
