package maintenance

import (
	"context"
	"fmt"
	"sync"

	"github.com/coffer-backup/coffer/internal/repository"
	"golang.org/x/sync/errgroup"
)

// usedSet is the set of blobs reachable from snapshots, with the trees
// already visited so each tree blob is loaded once.
type usedSet struct {
	mu    sync.Mutex
	blobs map[repository.BlobHandle]struct{}
	trees map[repository.ID]bool
}

func newUsedSet() *usedSet {
	return &usedSet{blobs: map[repository.BlobHandle]struct{}{}, trees: map[repository.ID]bool{}}
}

func (u *usedSet) has(h repository.BlobHandle) bool {
	_, ok := u.blobs[h]
	return ok
}

// addTrees walks the trees below roots, level by level with bounded
// parallelism. Any tree that cannot be loaded or decoded is an error: prune
// must never read an unreadable tree as "references nothing" (restic #4612).
func (u *usedSet) addTrees(ctx context.Context, r *repository.Repository, roots []repository.ID) error {
	var frontier []repository.ID
	for _, id := range roots {
		if !u.trees[id] {
			u.trees[id] = true
			frontier = append(frontier, id)
		}
	}
	for len(frontier) > 0 {
		var next []repository.ID
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(8)
		for _, id := range frontier {
			g.Go(func() error {
				t, err := r.LoadTree(gctx, id)
				if err != nil {
					return fmt.Errorf("tree %s: %w", id.Short(), err)
				}
				u.mu.Lock()
				defer u.mu.Unlock()
				u.blobs[repository.BlobHandle{Type: repository.TreeBlob, ID: id}] = struct{}{}
				for _, n := range t.Nodes {
					for _, c := range n.Content {
						if c.ID != nil {
							u.blobs[repository.BlobHandle{Type: repository.DataBlob, ID: *c.ID}] = struct{}{}
						}
					}
					if n.Subtree != nil && !u.trees[*n.Subtree] {
						u.trees[*n.Subtree] = true
						next = append(next, *n.Subtree)
					}
				}
				return nil
			})
		}
		if err := g.Wait(); err != nil {
			return err
		}
		frontier = next
	}
	return nil
}
