package fsmeta

import "sync"

// HardlinkIndex remembers, during a restore, where the first entry of each
// hard-linked inode (identified by the backed-up Device and Inode) was
// restored, so later names can be linked to it. The zero value is ready to
// use and it is safe for concurrent use.
type HardlinkIndex struct {
	mu    sync.Mutex
	paths map[devIno]string
}

type devIno struct{ dev, ino uint64 }

// Remember records path for (dev, ino) unless a path is already recorded.
func (h *HardlinkIndex) Remember(dev, ino uint64, path string) {
	h.LookupOrRemember(dev, ino, path)
}

// Lookup returns the path recorded for (dev, ino).
func (h *HardlinkIndex) Lookup(dev, ino uint64) (string, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	p, ok := h.paths[devIno{dev, ino}]
	return p, ok
}

// LookupOrRemember returns the path recorded for (dev, ino) and true, or
// records path and returns it with false. Exactly one of several concurrent
// callers for the same inode gets false: that one restores the content.
func (h *HardlinkIndex) LookupOrRemember(dev, ino uint64, path string) (string, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	k := devIno{dev, ino}
	if p, ok := h.paths[k]; ok {
		return p, true
	}
	if h.paths == nil {
		h.paths = map[devIno]string{}
	}
	h.paths[k] = path
	return path, false
}

// Forget removes the record for (dev, ino), for example once all of an
// inode's Links names are restored, to bound memory.
func (h *HardlinkIndex) Forget(dev, ino uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.paths, devIno{dev, ino})
}

// Len returns the number of recorded inodes.
func (h *HardlinkIndex) Len() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.paths)
}
