package server

import (
	"context"
	"fmt"
	"sync"

	"github.com/coffer-backup/coffer/internal/serverdb"
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

// Charges and caps of the quota: every object is charged at least
// MinObjectCharge and every repository RepoCharge, so that empty objects
// and empty repositories, which cost the server inodes and blocks, are not
// free under a quota; and a client holds at most a capped number of
// objects and repositories (the inodes it may make), quota or not.
const (
	// MinObjectCharge: one filesystem block, what the smallest sealed
	// object occupies with its inode on common filesystems.
	MinObjectCharge = 4 << 10
	// RepoCharge: a repository's directory and its kind directories, one
	// block each, and the first data shard directories.
	RepoCharge = 64 << 10
	// DefaultMaxObjects and DefaultMaxRepos are the caps of a client whose
	// record sets none (Config.MaxObjects, Config.MaxRepos).
	DefaultMaxObjects = 1_000_000
	DefaultMaxRepos   = 100
)

// objectCharge is what an object of size content bytes counts against
// its client's quota.
func objectCharge(size int64) int64 { return max(size, MinObjectCharge) }

// clientUsage is what a client stores (bytes as charged, objects and
// repositories), loaded from disk on first use and then kept up to date,
// plus what in-flight uploads and creations reserved.
type clientUsage struct {
	mu       sync.Mutex
	loaded   bool
	used     int64 // charged bytes
	objects  int64
	repos    int64
	reserved int64 // charged bytes of uploads in flight
	pending  int64 // objects of uploads in flight
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
	st, err := s.store.Usage(ctx, client, objectCharge)
	if err != nil {
		return fmt.Errorf("compute usage of %s: %w", client, err)
	}
	u.used, u.objects, u.repos = st.Charged+st.Repos*RepoCharge, st.Objects, st.Repos
	u.loaded = true
	return nil
}

// limits are the caps that apply to client c.
func (s *Server) limits(c serverdb.Client) (maxObjects, maxRepos int64) {
	maxObjects, maxRepos = c.MaxObjects, c.MaxRepos
	if maxObjects <= 0 {
		maxObjects = s.cfg.MaxObjects
	}
	if maxRepos <= 0 {
		maxRepos = s.cfg.MaxRepos
	}
	return maxObjects, maxRepos
}

// checkQuota fails with wire.ErrQuota when charge more bytes do not fit
// c's quota; u.mu is held.
func checkQuota(u *clientUsage, c serverdb.Client, charge int64, what string) error {
	if c.QuotaBytes > 0 && u.used+u.reserved+charge > c.QuotaBytes {
		return fmt.Errorf("%w: client %s has used %d of its %d bytes; %s counts %d more (every object counts at least %d bytes, every repository %d)",
			wire.ErrQuota, c.Name, u.used+u.reserved, c.QuotaBytes, what, charge, MinObjectCharge, RepoCharge)
	}
	return nil
}

// reserve books an upload of size bytes against c's quota and object cap
// and fails with wire.ErrQuota if it does not fit. The returned function
// ends the reservation; committed says whether the object is now stored.
func (s *Server) reserve(ctx context.Context, c serverdb.Client, size int64) (done func(committed bool), err error) {
	u := s.usageOf(c.Name)
	u.mu.Lock()
	defer u.mu.Unlock()
	if err := s.loadLocked(ctx, c.Name, u); err != nil {
		return nil, err
	}
	charge := objectCharge(size)
	if err := checkQuota(u, c, charge, "the upload"); err != nil {
		return nil, err
	}
	if maxObjects, _ := s.limits(c); u.objects+u.pending >= maxObjects {
		return nil, fmt.Errorf("%w: client %s has %d objects, its limit is %d", wire.ErrQuota, c.Name, u.objects+u.pending, maxObjects)
	}
	u.reserved += charge
	u.pending++
	return func(committed bool) {
		u.mu.Lock()
		defer u.mu.Unlock()
		u.reserved -= charge
		u.pending--
		if committed {
			u.used += charge
			u.objects++
		}
	}, nil
}

// reserveRepo checks a new repository against c's quota and repository
// cap and, if it fits, runs create under the client's usage lock and
// counts the repository when create succeeds.
func (s *Server) reserveRepo(ctx context.Context, c serverdb.Client, create func() error) error {
	u := s.usageOf(c.Name)
	u.mu.Lock()
	defer u.mu.Unlock()
	if err := s.loadLocked(ctx, c.Name, u); err != nil {
		return err
	}
	if err := checkQuota(u, c, RepoCharge, "a new repository"); err != nil {
		return err
	}
	if _, maxRepos := s.limits(c); u.repos >= maxRepos {
		return fmt.Errorf("%w: client %s has %d repositories, its limit is %d", wire.ErrQuota, c.Name, u.repos, maxRepos)
	}
	if err := create(); err != nil {
		return err
	}
	u.used += RepoCharge
	u.repos++
	return nil
}

// released takes a removed object of size content bytes off the client's
// usage.
func (s *Server) released(client string, size int64) {
	u := s.usageOf(client)
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.loaded {
		u.used -= objectCharge(size)
		u.objects--
	}
}
