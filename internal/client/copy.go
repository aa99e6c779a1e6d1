package client

import (
	"context"
	"errors"
	"fmt"

	"github.com/coffer-backup/coffer/internal/copier"
	"github.com/coffer-backup/coffer/internal/repository"
)

// CopyOptions choose the snapshots Copy copies.
type CopyOptions struct {
	// Snapshots are IDs, ID prefixes or "latest" (the latest per Filter);
	// none: every snapshot Filter selects.
	Snapshots []string
	Filter    repository.SnapshotFilter
	// Progress, when not nil, is updated as the copy runs.
	Progress *copier.Progress
	// OnSnapshot, when not nil, is told of each snapshot as it is copied
	// (copy is the new snapshot) or skipped (copy is nil, existing names
	// the target's snapshot that holds it).
	OnSnapshot func(src, copy *repository.Snapshot, existing repository.ID)
}

// CopyResult is what a copy did.
type CopyResult struct {
	Copied  []CopiedSnapshot
	Skipped []copier.Skip
	// Rechunked is set when the repositories cut and name data
	// differently, so file contents went through the target's chunker.
	Rechunked bool
	Stats     repository.WriteStats
}

// CopiedSnapshot pairs a source snapshot with its copy.
type CopiedSnapshot struct {
	Source, Target *repository.Snapshot
}

// ErrSameRepository: Copy's source and target are one repository.
var ErrSameRepository = errors.New("source and target are the same repository")

// Copy copies snapshots from the repository src into c (restic's copy),
// holding a shared lock named copy on src and a backup's lock on c. A snapshot c already holds a copy of is
// skipped, so a copy that was interrupted, or is run again, copies only
// what is missing. Snapshots are written only once their data and trees
// are stored and indexed, and only while c's lock is valid.
func (c *Client) Copy(ctx context.Context, src *Client, o CopyOptions) (*CopyResult, error) {
	if src.repo.Config().ID == c.repo.Config().ID {
		return nil, fmt.Errorf("%w (%s)", ErrSameRepository, c.repo.Config().ID[:8])
	}
	srcSnaps, end, err := src.BeginRead(ctx, "copy", false)
	if err != nil {
		return nil, fmt.Errorf("source repository: %w", err)
	}
	defer end()
	sel, err := src.selectCopies(ctx, srcSnaps, o)
	if err != nil {
		return nil, err
	}
	lock, err := c.repo.Lock(ctx, "copy", false)
	if err != nil {
		return nil, err
	}
	defer func() { _ = lock.Unlock(context.WithoutCancel(ctx)) }()
	dstSnaps, err := c.beginWrite(ctx)
	if err != nil {
		return nil, err
	}
	aliases, err := src.aliases(ctx)
	if err != nil {
		return nil, err
	}
	todo, skip := copier.Plan(sel, dstSnaps, aliases)
	res := &CopyResult{Skipped: skip}
	if o.Progress != nil {
		o.Progress.Todo.Store(uint64(len(todo)))
	}
	for _, s := range skip {
		if o.OnSnapshot != nil {
			o.OnSnapshot(s.Source, nil, s.Existing)
		}
	}
	cp := copier.New(src.repo, c.repo, o.Progress)
	res.Rechunked = cp.Rechunk
	for _, s := range todo {
		out, err := cp.Copy(ctx, s)
		if err == nil {
			err = lock.Valid(ctx)
		}
		if err == nil {
			err = c.repo.SaveSnapshot(ctx, out)
		}
		if err != nil {
			res.Stats = c.repo.Stats()
			return res, fmt.Errorf("copy snapshot %s: %w", s.ID.Short(), err)
		}
		c.recordSnapshot(ctx, out.ID)
		if o.Progress != nil {
			o.Progress.Snapshots.Add(1)
		}
		if o.OnSnapshot != nil {
			o.OnSnapshot(s, out, out.ID)
		}
		res.Copied = append(res.Copied, CopiedSnapshot{Source: s, Target: out})
	}
	res.Stats = c.repo.Stats()
	return res, nil
}

// beginWrite loads c's index, leaves out packs it cannot vouch for (as a
// backup does) and returns its snapshots.
func (c *Client) beginWrite(ctx context.Context) ([]*repository.Snapshot, error) {
	if err := c.repo.LoadIndex(ctx); err != nil {
		return nil, err
	}
	if u, err := c.repo.VouchIndex(ctx, c.opts.StateDir); err != nil {
		return nil, err
	} else if u.Count() > 0 {
		c.opts.warnf("not deduplicating against %d packs (%s): their data is stored again; run `coffer check`", u.Count(), u)
	}
	return c.LoadSnapshots(ctx)
}

// selectCopies returns the snapshots o names among snaps, oldest first.
func (c *Client) selectCopies(ctx context.Context, snaps []*repository.Snapshot, o CopyOptions) ([]*repository.Snapshot, error) {
	if len(o.Snapshots) > 0 {
		sel, err := c.selectSnapshots(ctx, snaps, o.Snapshots, o.Filter)
		if err != nil {
			return nil, err
		}
		repository.SortSnapshots(sel)
		return sel, nil
	}
	var out []*repository.Snapshot
	for _, s := range snaps {
		if o.Filter.Match(s) {
			out = append(out, s)
		}
	}
	return out, nil
}

// aliases maps each snapshot that `prune --rewrite-old-terms` re-sealed
// to the IDs it had before, which copies made earlier name as original.
func (c *Client) aliases(ctx context.Context) (map[repository.ID][]repository.ID, error) {
	m, err := c.repo.SnapshotReplacements(ctx)
	if err != nil {
		return nil, err
	}
	out := map[repository.ID][]repository.ID{}
	for old := range m {
		n := repository.ResolveReplacement(m, old)
		out[n] = append(out[n], old)
	}
	return out, nil
}
