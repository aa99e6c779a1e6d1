package repository

import (
	"errors"
	"fmt"
)

// Limits on walking a snapshot's trees (docs/format.md §7), so that a
// hostile tree from a key holder cannot make ls, restore or any other walk
// run out of memory or time.
const (
	// MaxPathLength bounds a path inside a snapshot ("/a/b"), in bytes,
	// as Linux's PATH_MAX bounds a path given to the kernel. Each level
	// adds at least two bytes, so trees nest at most MaxPathLength/2 deep.
	MaxPathLength = 4096
	// walkRepeatFactor and walkFloor bound how many nodes one walk
	// visits: at most walkFloor, or walkRepeatFactor times the nodes of
	// the distinct trees it loaded. Identical directories legitimately
	// share one tree (hardlink farms repeat whole directories), but a
	// tree referencing the next twice, 40 levels deep, would otherwise
	// expand to 2^40 nodes.
	walkRepeatFactor = 1024
	walkFloor        = 1 << 16
)

// ErrTreeBomb reports trees that repeat subtrees so often that walking
// them would take unbounded work.
var ErrTreeBomb = errors.New("trees repeat subtrees beyond the limit (a tree bomb?)")

// ErrPathTooLong reports a node whose path in the snapshot exceeds
// MaxPathLength.
var ErrPathTooLong = errors.New("path longer than the limit")

// WalkBudget counts the nodes one walk of a snapshot visits against the
// limits above. The zero value is ready; it is not safe for concurrent use.
type WalkBudget struct {
	seen    map[ID]struct{}
	unique  uint64
	visited uint64
}

// Visit accounts for loading tree id of n nodes and fails with ErrTreeBomb
// once the walk has visited more nodes than its distinct trees justify.
func (b *WalkBudget) Visit(id ID, n int) error {
	if n == 0 {
		return nil // an empty directory costs nothing however often it repeats
	}
	if b.seen == nil {
		b.seen = map[ID]struct{}{}
	}
	if _, ok := b.seen[id]; !ok {
		b.seen[id] = struct{}{}
		b.unique += uint64(n) // #nosec G115 -- n is a length, not negative
	}
	b.visited += uint64(n) // #nosec G115 -- n is a length, not negative
	if b.visited > max(walkFloor, walkRepeatFactor*b.unique) {
		return fmt.Errorf("%w: %d nodes visited from %d in distinct trees, at tree %s", ErrTreeBomb, b.visited, b.unique, id.Short())
	}
	return nil
}

// CheckPath fails with ErrPathTooLong for a snapshot path beyond
// MaxPathLength.
func CheckPath(p string) error {
	if len(p) > MaxPathLength {
		return fmt.Errorf("%w: %.64q… is %d bytes, the limit is %d", ErrPathTooLong, p, len(p), MaxPathLength)
	}
	return nil
}
