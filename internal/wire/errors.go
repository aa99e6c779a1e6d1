package wire

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"unicode/utf8"

	"github.com/coffer-backup/coffer/internal/storage"
)

// Sentinel errors of the protocol that have no storage equivalent. The
// client wraps them (or the storage sentinels) so callers use errors.Is.
var (
	ErrQuota           = errors.New("storage quota exceeded")
	ErrTooLarge        = errors.New("object too large for the server")
	ErrLengthRequired  = errors.New("upload without a content length")
	ErrDigest          = errors.New("upload does not match its content digest")
	ErrBadRequest      = errors.New("malformed request")
	ErrTooManyRequests = errors.New("too many concurrent requests")
	ErrUnauthenticated = errors.New("no valid client certificate")
	ErrCorrupt         = errors.New("object damaged on the server")
	ErrServer          = errors.New("server error")
	ErrUnavailable     = errors.New("server unavailable")
	ErrNotImplemented  = errors.New("not implemented by the server")
)

// Code is the machine-readable error of a response, in HeaderError.
type Code string

// The error codes and the HTTP status each is sent with.
const (
	CodeNotFound        Code = "not_found"       // 404
	CodeNoRepository    Code = "no_repository"   // 404
	CodeNoRoute         Code = "no_route"        // 404
	CodeExists          Code = "exists"          // 409
	CodeRange           Code = "range"           // 416
	CodeForbidden       Code = "forbidden"       // 403
	CodeInvalidName     Code = "invalid_name"    // 400
	CodeBadRequest      Code = "bad_request"     // 400
	CodeDigest          Code = "digest_mismatch" // 400
	CodeMethod          Code = "method"          // 405
	CodeLengthRequired  Code = "length_required" // 411
	CodeTooLarge        Code = "too_large"       // 413
	CodeQuota           Code = "quota"           // 507
	CodeTooManyRequests Code = "too_many"        // 429
	CodeUnauthenticated Code = "unauthenticated" // 401
	CodeCorrupt         Code = "corrupt"         // 500
	CodeInternal        Code = "internal"        // 500
	CodeUnavailable     Code = "unavailable"     // 503
	CodeNotImplemented  Code = "not_implemented" // 501
)

var codes = []struct {
	code   Code
	status int
	err    error
}{
	// Order matters for Classify: more specific sentinels first.
	{CodeNoRepository, http.StatusNotFound, storage.ErrNoRepository},
	{CodeNotFound, http.StatusNotFound, storage.ErrNotFound},
	{CodeNoRoute, http.StatusNotFound, ErrNoRoute},
	{CodeExists, http.StatusConflict, storage.ErrExists},
	{CodeRange, http.StatusRequestedRangeNotSatisfiable, storage.ErrRange},
	{CodeForbidden, http.StatusForbidden, storage.ErrForbidden},
	{CodeInvalidName, http.StatusBadRequest, storage.ErrInvalidName},
	{CodeDigest, http.StatusBadRequest, ErrDigest},
	{CodeBadRequest, http.StatusBadRequest, ErrBadRequest},
	{CodeMethod, http.StatusMethodNotAllowed, ErrMethod},
	{CodeLengthRequired, http.StatusLengthRequired, ErrLengthRequired},
	{CodeTooLarge, http.StatusRequestEntityTooLarge, ErrTooLarge},
	{CodeQuota, http.StatusInsufficientStorage, ErrQuota},
	{CodeTooManyRequests, http.StatusTooManyRequests, ErrTooManyRequests},
	{CodeUnauthenticated, http.StatusUnauthorized, ErrUnauthenticated},
	{CodeCorrupt, http.StatusInternalServerError, ErrCorrupt},
	{CodeUnavailable, http.StatusServiceUnavailable, ErrUnavailable},
	{CodeNotImplemented, http.StatusNotImplemented, ErrNotImplemented},
	{CodeInternal, http.StatusInternalServerError, ErrServer},
}

// Classify maps an error to the status and code a server answers with.
// Errors that wrap none of the known sentinels are internal (500).
func Classify(err error) (int, Code) {
	for _, c := range codes {
		if errors.Is(err, c.err) {
			return c.status, c.code
		}
	}
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return http.StatusRequestEntityTooLarge, CodeTooLarge
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return http.StatusServiceUnavailable, CodeUnavailable
	}
	return http.StatusInternalServerError, CodeInternal
}

// ErrorBody is the JSON body of an error response.
type ErrorBody struct {
	Code    Code   `json:"code"`
	Message string `json:"message"`
}

// maxErrorBody bounds what a client reads of an error response.
const maxErrorBody = 4 << 10

// WriteError answers a request with err's status, code and message. For
// internal errors the message is generic: server paths and causes stay in
// the server's log, never in the response.
func WriteError(w http.ResponseWriter, err error) {
	status, code := Classify(err)
	msg := err.Error()
	if code == CodeInternal || code == CodeCorrupt {
		msg = http.StatusText(status)
	}
	if len(msg) > 512 {
		msg = msg[:512]
	}
	body, _ := json.Marshal(ErrorBody{Code: code, Message: msg})
	h := w.Header()
	h.Set(HeaderError, string(code))
	h.Set("Content-Type", ErrorContentType)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Del("Content-Length")
	w.WriteHeader(status)
	_, _ = w.Write(append(body, '\n'))
}

// ResponseError turns a failed response into an error wrapping the sentinel
// of its code (or, without a known code, of its status). body may be nil
// (HEAD); at most 4 KiB of it are read.
func ResponseError(resp *http.Response) error {
	var eb ErrorBody
	if resp.Body != nil {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
		_ = json.Unmarshal(b, &eb)
	}
	code := Code(resp.Header.Get(HeaderError))
	if code == "" {
		code = eb.Code
	}
	msg := eb.Message
	if !utf8.ValidString(msg) || len(msg) > 512 {
		msg = ""
	}
	sentinel := sentinelFor(code, resp.StatusCode)
	if msg == "" {
		return fmt.Errorf("server: %s: %w", resp.Status, sentinel)
	}
	return fmt.Errorf("server: %s: %q: %w", resp.Status, msg, sentinel)
}

func sentinelFor(code Code, status int) error {
	for _, c := range codes {
		if c.code == code && c.status == status {
			return c.err
		}
	}
	switch status {
	case http.StatusNotFound:
		return storage.ErrNotFound
	case http.StatusConflict, http.StatusPreconditionFailed:
		return storage.ErrExists
	case http.StatusRequestedRangeNotSatisfiable:
		return storage.ErrRange
	case http.StatusForbidden:
		return storage.ErrForbidden
	case http.StatusBadRequest:
		return ErrBadRequest
	case http.StatusUnauthorized:
		return ErrUnauthenticated
	case http.StatusRequestEntityTooLarge:
		return ErrTooLarge
	case http.StatusInsufficientStorage:
		return ErrQuota
	case http.StatusTooManyRequests:
		return ErrTooManyRequests
	case http.StatusServiceUnavailable, http.StatusBadGateway, http.StatusGatewayTimeout:
		return ErrUnavailable
	case http.StatusMethodNotAllowed:
		return ErrMethod
	case http.StatusNotImplemented:
		return ErrNotImplemented
	}
	return ErrServer
}

// Transient reports whether a request that failed with err may succeed when
// repeated: overload, unavailability and internal server errors, but not
// damaged objects or anything the request itself caused.
func Transient(err error) bool {
	return errors.Is(err, ErrTooManyRequests) || errors.Is(err, ErrUnavailable) ||
		(errors.Is(err, ErrServer) && !errors.Is(err, ErrCorrupt))
}
