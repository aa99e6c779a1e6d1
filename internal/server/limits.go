package server

import (
	"context"
	"fmt"
	"sync"

	"github.com/coffer-backup/coffer/internal/wire"
)

// acquire takes one of a client's request slots without waiting; false
// means the client has MaxClientRequests requests in flight already.
func (s *Server) acquire(client string) (release func(), ok bool) {
	s.mu.Lock()
	ch := s.slots[client]
	if ch == nil {
		ch = make(chan struct{}, s.cfg.MaxClientRequests)
		s.slots[client] = ch
	}
	s.mu.Unlock()
	select {
	case ch <- struct{}{}:
		return func() { <-ch }, true
	default:
		return nil, false
	}
}

// clientUsage is the content size a client stores, loaded from disk on
// first use and then kept up to date, plus what in-flight uploads reserved.
type clientUsage struct {
	mu       sync.Mutex
	loaded   bool
	used     int64
	reserved int64
}

func (s *Server) usageOf(client string) *clientUsage {
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.usage[client]
	if u == nil {
		u = &clientUsage{}
		s.usage[client] = u
	}
	return u
}

// loadLocked computes the usage from disk the first time; u.mu is held.
func (s *Server) loadLocked(ctx context.Context, client string, u *clientUsage) error {
	if u.loaded {
		return nil
	}
	used, err := s.store.usage(ctx, client)
	if err != nil {
		return fmt.Errorf("compute usage of %s: %w", client, err)
	}
	u.used, u.loaded = used, true
	return nil
}

// reserve books size bytes for an upload against quota (0: no quota) and
// fails with wire.ErrQuota if they do not fit. The returned function ends
// the reservation; committed says whether the bytes are now stored.
func (s *Server) reserve(ctx context.Context, client string, size, quota int64) (done func(committed bool), err error) {
	u := s.usageOf(client)
	u.mu.Lock()
	defer u.mu.Unlock()
	if err := s.loadLocked(ctx, client, u); err != nil {
		return nil, err
	}
	if quota > 0 && u.used+u.reserved+size > quota {
		return nil, fmt.Errorf("%w: %d of %d bytes used, %d more asked", wire.ErrQuota, u.used+u.reserved, quota, size)
	}
	u.reserved += size
	return func(committed bool) {
		u.mu.Lock()
		defer u.mu.Unlock()
		u.reserved -= size
		if committed {
			u.used += size
		}
	}, nil
}

// released subtracts a removed object's size from the client's usage.
func (s *Server) released(client string, size int64) {
	u := s.usageOf(client)
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.loaded {
		u.used -= size
	}
}
