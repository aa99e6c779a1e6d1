// Package storage defines the small interface every repository backend
// implements (local disk, coffer server, memory) and its error contract,
// the Properties backends declare, and the Registry that opens a location
// by its scheme (built with the backends in package backends).
//
// Backends store opaque, already-encrypted objects. They never interpret them.
package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Kind is a namespace of objects inside a repository.
type Kind string

// The kinds a repository uses. A backend must accept exactly these.
const (
	KindConfig    Kind = "config"    // the single "config" object
	KindKeys      Kind = "keys"      // key slots (passphrase, recovery)
	KindKeyring   Kind = "keyring"   // data-key terms, one object per term
	KindData      Kind = "data"      // pack files
	KindIndex     Kind = "index"     // index files
	KindSnapshots Kind = "snapshots" // snapshot objects
	KindLocks     Kind = "locks"     // lock objects
	KindForgets   Kind = "forgets"   // authenticated records of forgotten snapshots
	KindCondemned Kind = "condemned" // prune's first-phase deletion records
)

// Kinds lists all kinds, in a stable order.
var Kinds = []Kind{KindConfig, KindKeys, KindKeyring, KindData, KindIndex, KindSnapshots, KindLocks, KindForgets, KindCondemned}

// Sentinel errors. Backends wrap them; callers test with errors.Is.
var (
	ErrNotFound     = errors.New("object not found")
	ErrExists       = errors.New("object already exists")
	ErrInvalidName  = errors.New("invalid object name")
	ErrRange        = errors.New("read range outside object")
	ErrNoRepository = errors.New("repository does not exist")
	ErrForbidden    = errors.New("operation not permitted by the storage")
	ErrClosed       = errors.New("storage is closed")
)

// Handle names one object.
type Handle struct {
	Kind Kind
	Name string
}

// String returns "kind/name", the form used in messages and in AAD.
func (h Handle) String() string {
	if h.Kind == KindConfig {
		return "config"
	}
	return string(h.Kind) + "/" + h.Name
}

// FileInfo describes a stored object.
type FileInfo struct {
	Name string
	Size int64
}

// Storage is the backend contract. All methods are safe for concurrent use.
//
//   - Save stores data under h atomically and durably: when Save returns nil
//     the whole object is on stable storage; a crash never leaves a partial
//     object visible. Save of an existing name fails with ErrExists and
//     leaves the existing object untouched.
//   - Load returns length bytes starting at offset; length < 0 means "to the
//     end". An offset or range past the end fails with ErrRange; a missing
//     object fails with ErrNotFound.
//   - Stat returns the size of an object, or ErrNotFound.
//   - List calls fn for every object of kind, in no particular order. An
//     error while listing is returned, never reported as an empty listing.
//     For KindConfig it reports the single config object if present.
//   - Remove deletes an object; a missing object fails with ErrNotFound.
//     Backends that refuse deletion (append-only) fail with ErrForbidden.
//   - Close releases what the backend holds (open files, connections).
//     Every call after Close fails with an error wrapping ErrClosed; a
//     second Close returns nil. Calls in progress may complete.
type Storage interface {
	Location() string
	Save(ctx context.Context, h Handle, data []byte) error
	Load(ctx context.Context, h Handle, offset, length int64) ([]byte, error)
	Stat(ctx context.Context, h Handle) (FileInfo, error)
	List(ctx context.Context, kind Kind, fn func(FileInfo) error) error
	Remove(ctx context.Context, h Handle) error
	Close() error
}

// StreamSaver is implemented by backends that can store an object streamed
// from src, so the caller need not hold it in memory. SaveStream has Save's
// contract; src writes exactly size bytes, and anything else fails the save
// with nothing visible under h. src must be replayable: after a failed
// attempt, a decorator that retries calls WriteTo again, which must write
// the same bytes from the start. Callers fall back to Save when a backend
// does not implement it.
type StreamSaver interface {
	SaveStream(ctx context.Context, h Handle, src io.WriterTo, size int64) error
}

// ValidKind reports whether k is one of Kinds.
func ValidKind(k Kind) bool {
	for _, x := range Kinds {
		if x == k {
			return true
		}
	}
	return false
}

// ValidateHandle checks a handle before any backend touches a path with it.
// Names are 1 to 128 characters of [0-9a-z], '-' or '_'; the config kind
// has exactly one object, named "config".
func ValidateHandle(h Handle) error {
	if !ValidKind(h.Kind) {
		return fmt.Errorf("%w: unknown kind %q", ErrInvalidName, h.Kind)
	}
	if h.Kind == KindConfig {
		if h.Name != "config" {
			return fmt.Errorf("%w: config object must be named config", ErrInvalidName)
		}
		return nil
	}
	if len(h.Name) == 0 || len(h.Name) > 128 {
		return fmt.Errorf("%w: name length %d", ErrInvalidName, len(h.Name))
	}
	if strings.IndexFunc(h.Name, func(r rune) bool {
		return !(r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r == '-' || r == '_')
	}) >= 0 {
		return fmt.Errorf("%w: %q", ErrInvalidName, h.Name)
	}
	return nil
}
