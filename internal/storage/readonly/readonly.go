// Package readonly wraps any storage.Storage so that nothing can be written
// or removed through it, for commands that must only read a repository.
package readonly

import (
	"context"
	"fmt"
	"io"
	"sync/atomic"

	"github.com/coffer-backup/coffer/internal/storage"
)

// Storage is a read-only view of another storage. Save, SaveStream and
// Remove fail with an error wrapping storage.ErrForbidden (after the checks
// every backend makes: a valid handle, not closed, a live context); reads
// go to the wrapped storage unchanged.
type Storage struct {
	inner  storage.Storage
	closed atomic.Bool
}

var (
	_ storage.Storage     = (*Storage)(nil)
	_ storage.StreamSaver = (*Storage)(nil)
	_ storage.Propertied  = (*Storage)(nil)
	_ storage.Unwrapper   = (*Storage)(nil)
)

// New returns a read-only view of st. Closing it closes st.
func New(st storage.Storage) *Storage { return &Storage{inner: st} }

// Unwrap implements storage.Unwrapper.
func (s *Storage) Unwrap() storage.Storage { return s.inner }

// Properties implements storage.Propertied: st's, with ReadOnly set.
func (s *Storage) Properties() storage.Properties {
	p := storage.PropertiesOf(s.inner)
	p.ReadOnly = true
	return p
}

// Location implements storage.Storage.
func (s *Storage) Location() string { return s.inner.Location() }

// refuse returns why a write to h fails: an invalid handle, a closed
// storage, a done context, or else storage.ErrForbidden.
func (s *Storage) refuse(ctx context.Context, op string, h storage.Handle) error {
	if err := storage.ValidateHandle(h); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	if s.closed.Load() {
		return fmt.Errorf("%s %s: %w", op, h, storage.ErrClosed)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s %s: %w", op, h, err)
	}
	return fmt.Errorf("%s %s: %w: the repository is open read-only", op, h, storage.ErrForbidden)
}

// Save implements storage.Storage; it always fails.
func (s *Storage) Save(ctx context.Context, h storage.Handle, _ []byte) error {
	return s.refuse(ctx, "save", h)
}

// SaveStream implements storage.StreamSaver; it always fails, without
// reading src.
func (s *Storage) SaveStream(ctx context.Context, h storage.Handle, _ io.WriterTo, _ int64) error {
	return s.refuse(ctx, "save", h)
}

// Remove implements storage.Storage; it always fails.
func (s *Storage) Remove(ctx context.Context, h storage.Handle) error {
	return s.refuse(ctx, "remove", h)
}

// Load implements storage.Storage.
func (s *Storage) Load(ctx context.Context, h storage.Handle, offset, length int64) ([]byte, error) {
	return s.inner.Load(ctx, h, offset, length)
}

// Stat implements storage.Storage.
func (s *Storage) Stat(ctx context.Context, h storage.Handle) (storage.FileInfo, error) {
	return s.inner.Stat(ctx, h)
}

// List implements storage.Storage.
func (s *Storage) List(ctx context.Context, kind storage.Kind, fn func(storage.FileInfo) error) error {
	return s.inner.List(ctx, kind, fn)
}

// Close implements storage.Storage: it closes the wrapped storage.
func (s *Storage) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	return s.inner.Close()
}
