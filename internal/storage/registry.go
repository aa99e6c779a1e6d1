package storage

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"strings"
	"sync"
)

// ErrUnknownScheme is wrapped by Registry.Open for a location whose scheme
// no backend is registered for.
var ErrUnknownScheme = errors.New("unknown scheme")

// ErrLocation is wrapped by ParseLocation for a location that names nothing.
var ErrLocation = errors.New("invalid repository location")

// SchemeLocal is the scheme of plain paths.
const SchemeLocal = "local"

// maxLocation bounds a location (PATH_MAX on Linux).
const maxLocation = 4096

// Location is a repository location split at its scheme.
type Location struct {
	// Scheme selects the backend: SchemeLocal for a plain path.
	Scheme string
	// Rest is what follows "Scheme:" ("//host:port/repo" for
	// "coffer://host:port/repo"), or the whole location for a plain path.
	Rest string
	// Raw is the location as given.
	Raw string
}

// ParseLocation splits a repository location. A location starting with '/'
// or '.' is always a local path. Otherwise "SCHEME:REST", where SCHEME is a
// letter followed by letters, digits, '+', '-' or '.', names SCHEME, and
// anything else (no ':', or something else before the first one) is a
// local path. It fails, wrapping ErrLocation, for an empty location, an
// empty REST, a NUL byte or more than 4096 bytes; it does not look REST up.
func ParseLocation(s string) (Location, error) {
	switch {
	case s == "":
		return Location{}, fmt.Errorf("%w: empty", ErrLocation)
	case len(s) > maxLocation:
		return Location{}, fmt.Errorf("%w: longer than %d bytes", ErrLocation, maxLocation)
	case strings.IndexByte(s, 0) >= 0:
		return Location{}, fmt.Errorf("%w: %q contains a NUL byte", ErrLocation, s)
	case s[0] == '/' || s[0] == '.':
		return Location{Scheme: SchemeLocal, Rest: s, Raw: s}, nil
	}
	scheme, rest, ok := strings.Cut(s, ":")
	if !ok || !validScheme(scheme) {
		return Location{Scheme: SchemeLocal, Rest: s, Raw: s}, nil
	}
	if rest == "" {
		return Location{}, fmt.Errorf("%w: %q has nothing after the scheme", ErrLocation, s)
	}
	return Location{Scheme: scheme, Rest: rest, Raw: s}, nil
}

// validScheme reports whether s has the shape of a URL scheme (RFC 3986).
func validScheme(s string) bool {
	if s == "" || !isLetter(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		c := s[i]
		if !isLetter(c) && !(c >= '0' && c <= '9') && c != '+' && c != '-' && c != '.' {
			return false
		}
	}
	return true
}

func isLetter(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }

// OpenOptions are what a Factory needs beyond the location. The zero value
// opens an existing repository with no way to reach a coffer server.
type OpenOptions struct {
	// Create makes a new, empty repository namespace instead of opening an
	// existing one; the caller then saves the config object. False: the
	// repository must exist (else an error wrapping ErrNoRepository).
	Create bool
	// RemoteTLS returns the client TLS configuration (client certificate,
	// pinned CA) for the coffer server at host, "HOST:PORT". Nil: coffer://
	// locations fail to open.
	RemoteTLS func(ctx context.Context, host string) (*tls.Config, error)
	// CACertFile names a PEM file of CA certificates that backends
	// reached over HTTPS (s3:) trust besides the system's. "": the
	// system's only.
	CACertFile string
}

// Factory opens (or, with opts.Create, creates) the backend for a location
// whose scheme it was registered for.
type Factory func(ctx context.Context, loc Location, opts OpenOptions) (Storage, error)

// Registry maps schemes to the factories of their backends. The zero value
// is an empty registry; it is safe for concurrent use.
type Registry struct {
	mu        sync.RWMutex
	schemes   []string // in registration order
	factories map[string]Factory
}

// Register adds the factory for scheme. Like http.ServeMux.Handle, it
// panics on a programming error: a scheme that is not a valid scheme name,
// one registered twice, or a nil factory.
func (r *Registry) Register(scheme string, f Factory) {
	if !validScheme(scheme) {
		panic(fmt.Sprintf("storage: invalid scheme %q", scheme))
	}
	if f == nil {
		panic("storage: nil factory for scheme " + scheme)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.factories[scheme]; dup {
		panic("storage: scheme " + scheme + " registered twice")
	}
	if r.factories == nil {
		r.factories = map[string]Factory{}
	}
	r.factories[scheme] = f
	r.schemes = append(r.schemes, scheme)
}

// Schemes returns the registered schemes in registration order.
func (r *Registry) Schemes() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return append([]string(nil), r.schemes...)
}

// Open parses location and opens it with the factory of its scheme. A
// scheme nobody registered fails with an error wrapping ErrUnknownScheme
// that names the known ones.
func (r *Registry) Open(ctx context.Context, location string, opts OpenOptions) (Storage, error) {
	loc, err := ParseLocation(location)
	if err != nil {
		return nil, err
	}
	r.mu.RLock()
	f := r.factories[loc.Scheme]
	r.mu.RUnlock()
	if f == nil {
		return nil, fmt.Errorf("%w %q in repository location %q; known: %s; a local path containing ':' can be written %s:PATH or ./PATH",
			ErrUnknownScheme, loc.Scheme, location, strings.Join(r.Schemes(), ", "), SchemeLocal)
	}
	return f(ctx, loc, opts)
}
