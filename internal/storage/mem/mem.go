// Package mem is an in-memory storage.Storage for tests: it obeys the full
// backend contract but keeps nothing after the process exits.
package mem

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/coffer-backup/coffer/internal/storage"
)

// Mem is an in-memory backend. The zero value is not usable; call New.
type Mem struct {
	*store
	closed atomic.Bool
}

// store is what a Mem holds, shared with the Mems Reopen returns.
type store struct {
	mu      sync.RWMutex
	objects map[storage.Handle][]byte
}

var _ storage.Storage = (*Mem)(nil)

// New returns an empty in-memory storage.
func New() *Mem {
	return &Mem{store: &store{objects: map[storage.Handle][]byte{}}}
}

// Reopen returns a new, open Mem holding the same objects as m, as a
// process reopening the same repository would see them; m may be closed.
// Tests use it to inspect what was stored through a storage since closed.
func (m *Mem) Reopen() *Mem {
	return &Mem{store: m.store}
}

// Clone returns a new, open Mem holding the objects m holds now; later
// changes to either do not show in the other. Stored objects are never
// modified in place (Save keeps a copy, Load returns one), so the two
// share their bytes and cloning costs no copy of the data. Crash sweeps
// use it to start each run from the same repository.
func (m *Mem) Clone() *Mem {
	m.mu.RLock()
	defer m.mu.RUnlock()
	objects := make(map[storage.Handle][]byte, len(m.objects))
	for h, b := range m.objects {
		objects[h] = b
	}
	return &Mem{store: &store{objects: objects}}
}

// Location implements storage.Storage.
func (m *Mem) Location() string { return "mem:" }

// Save implements storage.Storage. It keeps its own copy of data.
func (m *Mem) Save(ctx context.Context, h storage.Handle, data []byte) error {
	if err := storage.ValidateHandle(h); err != nil {
		return fmt.Errorf("save: %w", err)
	}
	if err := m.usable(ctx); err != nil {
		return fmt.Errorf("save %s: %w", h, err)
	}
	buf := append([]byte{}, data...)
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.objects[h]; ok {
		return fmt.Errorf("save %s: %w", h, storage.ErrExists)
	}
	m.objects[h] = buf
	return nil
}

// Load implements storage.Storage. The result is a copy the caller owns.
func (m *Mem) Load(ctx context.Context, h storage.Handle, offset, length int64) ([]byte, error) {
	if err := storage.ValidateHandle(h); err != nil {
		return nil, fmt.Errorf("load: %w", err)
	}
	if err := m.usable(ctx); err != nil {
		return nil, fmt.Errorf("load %s: %w", h, err)
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	data, ok := m.objects[h]
	if !ok {
		return nil, fmt.Errorf("load %s: %w", h, storage.ErrNotFound)
	}
	size := int64(len(data))
	if offset < 0 || offset > size {
		return nil, fmt.Errorf("load %s: offset %d of %d bytes: %w", h, offset, size, storage.ErrRange)
	}
	if length < 0 {
		length = size - offset
	}
	if length > size-offset {
		return nil, fmt.Errorf("load %s: %d bytes at %d of %d: %w", h, length, offset, size, storage.ErrRange)
	}
	return append([]byte{}, data[offset:offset+length]...), nil
}

// Stat implements storage.Storage.
func (m *Mem) Stat(ctx context.Context, h storage.Handle) (storage.FileInfo, error) {
	if err := storage.ValidateHandle(h); err != nil {
		return storage.FileInfo{}, fmt.Errorf("stat: %w", err)
	}
	if err := m.usable(ctx); err != nil {
		return storage.FileInfo{}, fmt.Errorf("stat %s: %w", h, err)
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	data, ok := m.objects[h]
	if !ok {
		return storage.FileInfo{}, fmt.Errorf("stat %s: %w", h, storage.ErrNotFound)
	}
	return storage.FileInfo{Name: h.Name, Size: int64(len(data))}, nil
}

// List implements storage.Storage. It takes a snapshot of the names first,
// so fn may call other methods of m.
func (m *Mem) List(ctx context.Context, kind storage.Kind, fn func(storage.FileInfo) error) error {
	if !storage.ValidKind(kind) {
		return fmt.Errorf("list: %w: unknown kind %q", storage.ErrInvalidName, kind)
	}
	if err := m.usable(ctx); err != nil {
		return fmt.Errorf("list %s: %w", kind, err)
	}
	m.mu.RLock()
	var infos []storage.FileInfo
	for h, data := range m.objects {
		if h.Kind == kind {
			infos = append(infos, storage.FileInfo{Name: h.Name, Size: int64(len(data))})
		}
	}
	m.mu.RUnlock()
	for _, fi := range infos {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("list %s: %w", kind, err)
		}
		if err := fn(fi); err != nil {
			return err
		}
	}
	return nil
}

// Remove implements storage.Storage.
func (m *Mem) Remove(ctx context.Context, h storage.Handle) error {
	if err := storage.ValidateHandle(h); err != nil {
		return fmt.Errorf("remove: %w", err)
	}
	if err := m.usable(ctx); err != nil {
		return fmt.Errorf("remove %s: %w", h, err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.objects[h]; !ok {
		return fmt.Errorf("remove %s: %w", h, storage.ErrNotFound)
	}
	delete(m.objects, h)
	return nil
}

// Close implements storage.Storage: every call after it fails with
// storage.ErrClosed. The objects stay, for Reopen.
func (m *Mem) Close() error {
	m.closed.Store(true)
	return nil
}

// usable returns why a call cannot proceed: m is closed or ctx is done.
func (m *Mem) usable(ctx context.Context) error {
	if m.closed.Load() {
		return storage.ErrClosed
	}
	return ctx.Err()
}
