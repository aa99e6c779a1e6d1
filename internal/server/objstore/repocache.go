package objstore

import (
	"container/list"
	"io/fs"
	"os"
	"sync"

	"github.com/coffer-backup/coffer/internal/storage"
	"github.com/coffer-backup/coffer/internal/storage/local"
)

// openRepos is how many repositories the object store keeps open between
// requests. Each keeps a directory and up to 64 pack files open.
const openRepos = 32

// repoCache keeps the most recently used repositories open between
// requests, so a request does not check and open the repository's
// directory again and a pack read by one request is still open for the
// next (a restore reads most packs many times, one blob a request).
//
// Every request looks the repository's directory up again (an lstat
// through the object tree's os.Root) and compares it with the one held
// open: a directory removed, renamed or replaced (by a symbolic link, say)
// since is let go of and opened afresh, which refuses a link. An object
// removed from the
// tree by anything other than the repository's own Remove (the trash)
// must be dropped with forgetObject, or a pack file held open could still be
// read.
type repoCache struct {
	mu    sync.Mutex
	max   int
	repos map[string]*sharedRepo
	lru   *list.List // of *sharedRepo, most recently used first
	done  bool
}

// sharedRepo is one open repository and how many requests use it.
type sharedRepo struct {
	key     string
	dir     fs.FileInfo // the directory's entry when it was opened
	l       *local.Local
	refs    int
	evicted bool
	elem    *list.Element
}

func newRepoCache(max int) *repoCache {
	return &repoCache{max: max, repos: map[string]*sharedRepo{}, lru: list.New()}
}

// acquire returns the open repository key, whose directory entry is now
// dir, opened by open unless the one open is that directory, and the
// function that releases it.
func (c *repoCache) acquire(key string, dir fs.FileInfo, open func() (*local.Local, error)) (*local.Local, func(), error) {
	c.mu.Lock()
	if r, ok := c.repos[key]; ok && !os.SameFile(r.dir, dir) {
		c.evictLocked(r) // not the directory that is there now
	} else if ok {
		r.refs++
		c.lru.MoveToFront(r.elem)
		c.mu.Unlock()
		return r.l, c.releaser(r), nil
	}
	c.mu.Unlock()
	l, err := open()
	if err != nil {
		return nil, nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if r, ok := c.repos[key]; ok && os.SameFile(r.dir, dir) { // opened meanwhile by another request
		_ = l.Close()
		r.refs++
		c.lru.MoveToFront(r.elem)
		return r.l, c.releaser(r), nil
	}
	if r, ok := c.repos[key]; ok {
		c.evictLocked(r)
	}
	r := &sharedRepo{key: key, dir: dir, l: l, refs: 1}
	if c.done { // the store is closing: this one is not kept
		r.evicted = true
		return l, c.releaser(r), nil
	}
	r.elem = c.lru.PushFront(r)
	c.repos[key] = r
	for c.lru.Len() > c.max {
		c.evictLocked(c.lru.Back().Value.(*sharedRepo))
	}
	return l, c.releaser(r), nil
}

// releaser returns the function that ends one use of r; calling it again
// does nothing.
func (c *repoCache) releaser(r *sharedRepo) func() {
	var once sync.Once
	return func() {
		once.Do(func() {
			c.mu.Lock()
			defer c.mu.Unlock()
			r.refs--
			if r.evicted && r.refs == 0 {
				_ = r.l.Close()
			}
		})
	}
}

func (c *repoCache) evictLocked(r *sharedRepo) {
	if r.evicted {
		return
	}
	c.lru.Remove(r.elem)
	delete(c.repos, r.key)
	r.evicted = true
	if r.refs == 0 {
		_ = r.l.Close()
	}
}

// forget closes the repository key if it is open (when its last request
// ends, if it is in use), so the next request opens it afresh.
func (c *repoCache) forget(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if r, ok := c.repos[key]; ok {
		c.evictLocked(r)
	}
}

// forgetObject drops the open file of object h of the repository key, if
// the repository is open and holds one.
func (c *repoCache) forgetObject(key string, h storage.Handle) {
	c.mu.Lock()
	r, ok := c.repos[key]
	c.mu.Unlock()
	if ok {
		r.l.Forget(h)
	}
}

// close closes every repository not in use and the others when their
// requests end; repositories opened after it are closed on release.
func (c *repoCache) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.done = true
	for c.lru.Len() > 0 {
		c.evictLocked(c.lru.Back().Value.(*sharedRepo))
	}
}
