package repair

import (
	"context"
	"fmt"
	"path"
	"slices"

	"github.com/coffer-backup/coffer/internal/repository"
)

// RepairedTag marks the snapshots RepairSnapshots writes, as restic's.
const RepairedTag = "repaired"

// SnapshotResult is one snapshot that lost data, and its replacement.
type SnapshotResult struct {
	Original repository.ID  `json:"original"`
	New      *repository.ID `json:"new,omitempty"` // nil for a dry run
	Removed  []string       `json:"removed"`       // paths left out
}

// snapshotRepair rewrites trees, dropping what cannot be read.
type snapshotRepair struct {
	r      *repository.Repository
	dryRun bool
	done   map[repository.ID]treeFix // by original tree ID
}

type treeFix struct {
	id      repository.ID
	removed []string // relative to the tree
}

// RepairSnapshots writes, for every snapshot of snaps whose data is partly
// lost, a new snapshot without the lost files (a file any of whose data
// blobs is not available for deduplication, repository.MasterIndex.Has)
// and with every directory that cannot be read replaced by an empty one.
// The new snapshot has the original's fields, the tag "repaired", and the
// original as its parent. Originals are kept: forget them to drop them.
// The caller loads the index (and vouches for it) and holds a lock; with
// dryRun nothing is written.
func RepairSnapshots(ctx context.Context, r *repository.Repository, snaps []*repository.Snapshot, dryRun bool) ([]SnapshotResult, error) {
	sr := &snapshotRepair{r: r, dryRun: dryRun, done: map[repository.ID]treeFix{}}
	var out []SnapshotResult
	for _, s := range snaps {
		if !dryRun {
			r.StartWriting(ctx)
		}
		fix, err := sr.tree(ctx, s.Tree, "/")
		if err != nil {
			return out, err
		}
		if !dryRun {
			// The new trees are stored and indexed before the snapshot.
			if err := r.Flush(ctx); err != nil {
				return out, err
			}
		}
		if len(fix.removed) == 0 {
			continue
		}
		res := SnapshotResult{Original: s.ID, Removed: fix.removed}
		if !dryRun {
			n := *s
			n.ID, n.Tree = repository.ID{}, fix.id
			orig := s.ID
			n.Parent = &orig
			if !slices.Contains(n.Tags, RepairedTag) {
				n.Tags = append(slices.Clone(n.Tags), RepairedTag)
			}
			if err := r.SaveSnapshot(ctx, &n); err != nil {
				return out, err
			}
			res.New = &n.ID
		}
		out = append(out, res)
	}
	return out, nil
}

// tree returns the repaired form of the tree id, found at dir.
func (sr *snapshotRepair) tree(ctx context.Context, id repository.ID, dir string) (treeFix, error) {
	if f, ok := sr.done[id]; ok {
		return treeFix{id: f.id, removed: prefixed(dir, f.removed)}, nil
	}
	t, err := sr.r.LoadTree(ctx, id)
	if err != nil {
		if ctx.Err() != nil {
			return treeFix{}, ctx.Err()
		}
		empty, serr := sr.save(ctx, &repository.Tree{})
		return treeFix{id: empty, removed: []string{dir}}, serr
	}
	var nt repository.Tree
	var removed []string
	for _, n := range t.Nodes {
		name := string(n.Name)
		switch {
		case n.Subtree != nil:
			f, err := sr.tree(ctx, *n.Subtree, name)
			if err != nil {
				return treeFix{}, err
			}
			if len(f.removed) > 0 {
				nn := *n
				nn.Subtree = &f.id
				n = &nn
				removed = append(removed, f.removed...)
			}
		case !sr.available(n):
			removed = append(removed, name)
			continue
		}
		nt.Nodes = append(nt.Nodes, n)
	}
	fix := treeFix{id: id, removed: removed}
	if len(removed) > 0 {
		if fix.id, err = sr.save(ctx, &nt); err != nil {
			return treeFix{}, err
		}
	}
	sr.done[id] = fix
	return treeFix{id: fix.id, removed: prefixed(dir, removed)}, nil
}

// available reports whether every data blob of a file node can be read.
func (sr *snapshotRepair) available(n *repository.Node) bool {
	idx := sr.r.Index()
	for _, c := range n.Content {
		if c.ID != nil && !idx.Has(repository.BlobHandle{Type: repository.DataBlob, ID: *c.ID}) {
			return false
		}
	}
	return true
}

// save stores a tree (in a dry run, only computes its ID).
func (sr *snapshotRepair) save(ctx context.Context, t *repository.Tree) (repository.ID, error) {
	if !sr.dryRun {
		return sr.r.SaveTree(ctx, t)
	}
	b, err := t.Encode()
	if err != nil {
		return repository.ID{}, fmt.Errorf("encode tree: %w", err)
	}
	return sr.r.Hasher().Sum(b), nil
}

func prefixed(dir string, names []string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = path.Join(dir, n)
	}
	return out
}
