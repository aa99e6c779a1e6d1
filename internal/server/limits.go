package server

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"sync"

	"github.com/coffer-backup/coffer/internal/server/objstore"
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

// clientUsage notes whether this server has made sure the database holds
// a client's usage (loadUsage). The usage itself, charged bytes, objects
// and repositories with what uploads in flight reserved, is kept in the
// database (serverdb.Usage), so that servers sharing it and a bucket
// enforce one quota.
type clientUsage struct {
	mu     sync.Mutex
	loaded bool
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

// loadUsage makes sure the database holds client's usage, the first time
// this server meets the client. Objects in a state directory belong to
// this server alone (it holds the directory's lock), so it counts them
// and records the count; objects in a bucket may be shared, so it counts
// them only when no server has recorded a usage yet (server scrub counts
// again).
func (s *Server) loadUsage(ctx context.Context, client string) error {
	u := s.usageOf(client)
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.loaded {
		return nil
	}
	if s.store.InBucket() {
		_, err := s.cfg.DB.Usage(ctx, client)
		if err == nil {
			u.loaded = true
			return nil
		}
		if !errors.Is(err, serverdb.ErrNotFound) {
			return fmt.Errorf("%w: read the usage of %s: %v", wire.ErrUnavailable, client, err)
		}
	}
	n, err := countUsage(ctx, s.store, client)
	if err != nil {
		return fmt.Errorf("compute usage of %s: %w", client, err)
	}
	if s.store.InBucket() {
		_, err = s.cfg.DB.InitUsage(ctx, n)
	} else {
		err = s.cfg.DB.SetUsage(ctx, n)
	}
	if err != nil {
		return fmt.Errorf("%w: record the usage of %s: %v", wire.ErrUnavailable, client, err)
	}
	u.loaded = true
	return nil
}

// countUsage counts what client stores, as charged.
func countUsage(ctx context.Context, st *objstore.Store, client string) (serverdb.Usage, error) {
	n, err := st.Usage(ctx, client, objectCharge)
	if err != nil {
		return serverdb.Usage{}, err
	}
	return serverdb.Usage{Client: client, Charged: n.Charged + n.Repos*RepoCharge, Objects: n.Objects, Repos: n.Repos}, nil
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

// charge books d against c's usage in the database within its quota and
// caps, or fails with wire.ErrQuota saying which it would pass; what is
// being charged.
func (s *Server) charge(ctx context.Context, c serverdb.Client, d serverdb.Usage, what string) error {
	if err := s.loadUsage(ctx, c.Name); err != nil {
		return err
	}
	maxObjects, maxRepos := s.limits(c)
	u, err := s.cfg.DB.AddUsage(ctx, c.Name, d, serverdb.UsageLimits{QuotaBytes: c.QuotaBytes, MaxObjects: maxObjects, MaxRepos: maxRepos})
	switch {
	case err == nil:
		return nil
	case serverdb.Unavailable(err):
		return fmt.Errorf("count the usage of %s: %w", c.Name, err) // fail answers 503 without the cause
	case !errors.Is(err, serverdb.ErrOverLimit):
		s.log.Error("count the usage", "client", c.Name, "err", err)
		return fmt.Errorf("%w: cannot count the usage of %s now", wire.ErrUnavailable, c.Name)
	case d.Objects > 0 && u.Objects+d.Objects > maxObjects:
		return fmt.Errorf("%w: client %s has %d objects, its limit is %d", wire.ErrQuota, c.Name, u.Objects, maxObjects)
	case d.Repos > 0 && u.Repos+d.Repos > maxRepos:
		return fmt.Errorf("%w: client %s has %d repositories, its limit is %d", wire.ErrQuota, c.Name, u.Repos, maxRepos)
	}
	return fmt.Errorf("%w: client %s has used %d of its %d bytes; %s counts %d more (every object counts at least %d bytes, every repository %d)",
		wire.ErrQuota, c.Name, u.Charged, c.QuotaBytes, what, d.Charged, MinObjectCharge, RepoCharge)
}

// refund takes d back off client's usage, whatever its limits; a failure
// is logged (server scrub counts again).
func (s *Server) refund(ctx context.Context, client string, d serverdb.Usage) {
	d.Charged, d.Objects, d.Repos = -d.Charged, -d.Objects, -d.Repos
	if _, err := s.cfg.DB.AddUsage(context.WithoutCancel(ctx), client, d, serverdb.UsageLimits{}); err != nil && !errors.Is(err, serverdb.ErrNotFound) {
		s.log.Error("count usage", "client", client, "err", err)
	}
}

// reserve books an upload of size bytes against c's quota and object cap
// and fails with wire.ErrQuota if it does not fit. The returned function
// ends the reservation; committed says whether the object is now stored
// (else the charge is taken back).
func (s *Server) reserve(ctx context.Context, c serverdb.Client, size int64) (done func(committed bool), err error) {
	d := serverdb.Usage{Charged: objectCharge(size), Objects: 1}
	if err := s.charge(ctx, c, d, "the upload"); err != nil {
		return nil, err
	}
	return func(committed bool) {
		if !committed {
			s.refund(ctx, c.Name, d)
		}
	}, nil
}

// reserveRepo checks a new repository against c's quota and repository
// cap and, if it fits, runs create, taking the charge back when create
// fails.
func (s *Server) reserveRepo(ctx context.Context, c serverdb.Client, create func() error) error {
	d := serverdb.Usage{Charged: RepoCharge, Repos: 1}
	if err := s.charge(ctx, c, d, "a new repository"); err != nil {
		return err
	}
	if err := create(); err != nil {
		s.refund(ctx, c.Name, d)
		return err
	}
	return nil
}

// released takes a removed object of size content bytes off the client's
// usage. A client this server has not counted yet in a state directory
// is counted afresh when it is first met.
func (s *Server) released(ctx context.Context, client string, size int64) {
	u := s.usageOf(client)
	u.mu.Lock()
	loaded := u.loaded
	u.mu.Unlock()
	if loaded || s.store.InBucket() {
		s.refund(ctx, client, serverdb.Usage{Charged: objectCharge(size), Objects: 1})
	}
}

// RecountUsage counts what every client stores in the objects of the
// state directory dir (every client with objects, and every enrolled
// one) and records the counts in db, replacing the recorded usage: what
// a server killed mid-upload left charged, or objects changed beside the
// servers, is set right. Uploads in flight while it counts may be left
// out until the next count. It returns how many clients it counted.
func RecountUsage(ctx context.Context, dir string, db serverdb.DB) (int, error) {
	st, err := OpenObjectsDir(ctx, dir)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil // no object tree: nothing stored yet
	}
	if err != nil {
		return 0, err
	}
	defer func() { _ = st.Close() }()
	names, err := st.Clients(ctx)
	if err != nil {
		return 0, err
	}
	enrolled, err := db.Clients(ctx)
	if err != nil {
		return 0, err
	}
	for _, c := range enrolled {
		if !slices.Contains(names, c.Name) {
			names = append(names, c.Name)
		}
	}
	for i, name := range names {
		n, err := countUsage(ctx, st, name)
		if err != nil {
			return i, fmt.Errorf("count the usage of %s: %w", name, err)
		}
		if err := db.SetUsage(ctx, n); err != nil {
			return i, err
		}
	}
	return len(names), nil
}
