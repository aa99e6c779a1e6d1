package repository

import (
	"context"
	"fmt"
	"sync"

	"github.com/coffer-backup/coffer/internal/storage"
)

// packCache keeps whole packs in memory for backends where a request costs
// far more than its bytes (a coffer server): restoring many small files
// then takes one request per pack instead of one per blob. It holds at most
// max packs, evicting the least recently used; concurrent requests for the
// same pack share one download.
type packCache struct {
	mu      sync.Mutex
	max     int
	limit   int64 // largest pack loaded whole (MaxPackSize)
	entries map[ID]*cachedPack
	order   []ID // least recently used first
}

type cachedPack struct {
	ready chan struct{}
	data  []byte
	err   error
}

func newPackCache(max int, limit int64) *packCache {
	return &packCache{max: max, limit: limit, entries: map[ID]*cachedPack{}}
}

func (c *packCache) touch(id ID) {
	for i, x := range c.order {
		if x == id {
			c.order = append(c.order[:i], c.order[i+1:]...)
			break
		}
	}
	c.order = append(c.order, id)
}

// get returns the whole pack, downloading it once.
func (c *packCache) get(ctx context.Context, st storage.Storage, id ID) ([]byte, error) {
	c.mu.Lock()
	e, ok := c.entries[id]
	if !ok {
		e = &cachedPack{ready: make(chan struct{})}
		c.entries[id] = e
		for len(c.order) >= c.max {
			old := c.order[0]
			c.order = c.order[1:]
			delete(c.entries, old)
		}
	}
	c.touch(id)
	c.mu.Unlock()
	if !ok {
		e.data, e.err = loadWhole(ctx, st, storage.Handle{Kind: storage.KindData, Name: id.String()}, -1, c.limit)
		if e.err != nil {
			e.err = fmt.Errorf("load pack %s: %w", id.Short(), e.err)
			c.mu.Lock()
			if c.entries[id] == e {
				delete(c.entries, id) // do not cache failures
			}
			c.mu.Unlock()
		}
		close(e.ready)
	}
	select {
	case <-e.ready:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return e.data, e.err
}

// slice returns [off, off+n) of a cached pack, checking the bounds.
func (c *packCache) slice(ctx context.Context, st storage.Storage, id ID, off, n int64) ([]byte, error) {
	data, err := c.get(ctx, st, id)
	if err != nil {
		return nil, err
	}
	if off < 0 || n < 0 || off+n > int64(len(data)) {
		return nil, fmt.Errorf("pack %s: %w: range %d+%d outside %d bytes", id.Short(), ErrCorruptPack, off, n, len(data))
	}
	return data[off : off+n], nil
}

// UsePackCache makes blob reads fetch and keep up to n whole packs (n <= 0
// turns it off). Set it before reading, for remote backends.
func (r *Repository) UsePackCache(n int) {
	if n <= 0 {
		r.packs = nil
		return
	}
	r.packs = newPackCache(n, r.objectLimit(storage.KindData))
}
