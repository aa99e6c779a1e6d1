package client

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/coffer-backup/coffer/internal/check"
	"github.com/coffer-backup/coffer/internal/filter"
	"github.com/coffer-backup/coffer/internal/maintenance"
	"github.com/coffer-backup/coffer/internal/repository"
	"github.com/coffer-backup/coffer/internal/restorer"
)

// BeginRead prepares a read-only operation: it takes a shared lock named
// op (none with noLock), loads the index and the snapshots (with the
// rollback check). The caller calls end when done.
func (c *Client) BeginRead(ctx context.Context, op string, noLock bool) (snaps []*repository.Snapshot, end func(), err error) {
	end, err = c.readLock(ctx, op, noLock)
	if err != nil {
		return nil, nil, err
	}
	if err = c.repo.LoadIndex(ctx); err == nil {
		snaps, err = c.LoadSnapshots(ctx)
	}
	if err != nil {
		end()
		return nil, nil, err
	}
	return snaps, end, nil
}

// readLock takes a shared lock unless noLock; the returned func releases it.
// A lock that cannot be written (a full or read-only disk) is a warning:
// the operation goes on as with noLock (issue 10, item 20).
func (c *Client) readLock(ctx context.Context, op string, noLock bool) (func(), error) {
	if noLock {
		return func() {}, nil
	}
	l, err := c.repo.Lock(ctx, op, false)
	if errors.Is(err, repository.ErrLockNotWritten) {
		c.opts.warnf("%v; going on without a lock, as with --no-lock", err)
		return func() {}, nil
	}
	if err != nil {
		return nil, err
	}
	return func() { _ = l.Unlock(context.WithoutCancel(ctx)) }, nil
}

// RestoreOptions describe a restore.
type RestoreOptions struct {
	Snapshot string                    // "latest" or an ID prefix
	Filter   repository.SnapshotFilter // which snapshots Snapshot chooses from
	Target   string                    // directory to restore below
	Include  *filter.Matcher           // nil: everything
	Exclude  *filter.Matcher           // nil: nothing
	Verify   bool                      // re-read every restored file
	NoLock   bool                      // take no lock
	Progress *restorer.Progress        // nil: not reported
	Safe     bool                      // restorer.Options.Safe: leave privileges out
}

// RestoreResult is what a restore did. Progress holds the counts.
type RestoreResult struct {
	Snapshot *repository.Snapshot
	Progress *restorer.Progress
	Errors   []restorer.Error // entries that could not be restored
	Warnings []restorer.Error // entries left out on purpose (Safe: device nodes)
	// UnmatchedIncludes are the include patterns that selected nothing in
	// the snapshot.
	UnmatchedIncludes []string
}

// Restore restores a snapshot below o.Target. Entries that fail are listed
// in the result; the error is for failures of the whole restore.
func (c *Client) Restore(ctx context.Context, o RestoreOptions) (*RestoreResult, error) {
	snaps, end, err := c.BeginRead(ctx, "restore", o.NoLock)
	if err != nil {
		return nil, err
	}
	defer end()
	snap, err := repository.FindSnapshot(snaps, o.Snapshot, o.Filter)
	if err != nil {
		return nil, err
	}
	prog := o.Progress
	if prog == nil {
		prog = &restorer.Progress{}
	}
	res := &RestoreResult{Snapshot: snap, Progress: prog}
	r := restorer.New(c.repo, restorer.Options{Target: o.Target, Include: o.Include, Exclude: o.Exclude, Verify: o.Verify, Progress: prog, Safe: o.Safe})
	err = r.Restore(ctx, snap.Tree)
	res.Errors = r.Errors()
	res.Warnings = r.Warnings()
	res.UnmatchedIncludes = r.UnmatchedIncludes()
	return res, err
}

// Check verifies the repository under a shared lock (none with noLock),
// after the rollback check. Damage is in the result (Result.Err); the
// error is for a check that could not run.
func (c *Client) Check(ctx context.Context, o check.Options, noLock bool) (*check.Result, error) {
	end, err := c.readLock(ctx, "check", noLock)
	if err != nil {
		return nil, err
	}
	defer end()
	if _, err := c.LoadSnapshots(ctx); err != nil {
		return nil, err
	}
	res, err := check.Check(ctx, c.repo, o)
	if err != nil {
		return nil, err
	}
	// Backups stop deduplicating against damaged packs (VouchIndex).
	damaged, intact := res.PackVerdicts()
	if err := c.repo.RecordDamaged(c.opts.StateDir, damaged, intact); err != nil {
		c.opts.warnf("cannot record damaged packs: %v", err)
	}
	return res, nil
}

// ForgetOptions choose snapshots to forget: by IDs, or by Policy.
type ForgetOptions struct {
	IDs     []string                  // snapshot IDs or prefixes; exclusive with Policy
	Filter  repository.SnapshotFilter // which snapshots are considered
	Policy  maintenance.Policy        // retention policy
	GroupBy maintenance.GroupBy       // how Policy groups snapshots
	DryRun  bool                      // decide, remove nothing
	Now     time.Time                 // the policy's "now" (zero: time.Now())
}

// ForgetResult is what forget decided and did.
type ForgetResult struct {
	Plans   []maintenance.ForgetPlan // per group, for a policy
	Remove  []*repository.Snapshot   // the snapshots chosen
	Removed bool                     // whether they were removed
}

// Forget removes snapshots under a shared lock, writing an authenticated
// forget record first. Data is freed by Prune.
func (c *Client) Forget(ctx context.Context, o ForgetOptions) (*ForgetResult, error) {
	l, err := c.repo.Lock(ctx, "forget", false)
	if err != nil {
		return nil, err
	}
	defer func() { _ = l.Unlock(context.WithoutCancel(ctx)) }()
	snaps, err := c.LoadSnapshots(ctx)
	if err != nil {
		return nil, err
	}
	res := &ForgetResult{}
	if len(o.IDs) > 0 {
		if res.Remove, err = c.selectSnapshots(ctx, snaps, o.IDs, o.Filter); err != nil {
			return nil, err
		}
	} else {
		now := o.Now
		if now.IsZero() {
			now = time.Now()
		}
		if res.Plans, err = maintenance.PlanForget(snaps, o.Filter, o.GroupBy, o.Policy, now); err != nil {
			return nil, err
		}
		for _, p := range res.Plans {
			res.Remove = append(res.Remove, p.Remove...)
		}
	}
	if o.DryRun || len(res.Remove) == 0 {
		return res, nil
	}
	ids := make([]repository.ID, len(res.Remove))
	for i, s := range res.Remove {
		ids[i] = s.ID
	}
	if err := c.repo.ForgetSnapshots(ctx, repository.Hostname(), ids); err != nil {
		return res, err
	}
	res.Removed = true
	return res, nil
}

func (c *Client) selectSnapshots(ctx context.Context, snaps []*repository.Snapshot, sels []string, f repository.SnapshotFilter) ([]*repository.Snapshot, error) {
	var out []*repository.Snapshot
	seen := map[repository.ID]bool{}
	for _, a := range sels {
		s, err := repository.FindSnapshot(snaps, a, f)
		if err != nil {
			return nil, c.replacedHint(ctx, a, err)
		}
		if !seen[s.ID] {
			seen[s.ID] = true
			out = append(out, s)
		}
	}
	return out, nil
}

// replacedHint adds to a "no matching snapshot" error the new ID of a
// snapshot that `prune --rewrite-old-terms` re-sealed under a new ID.
func (c *Client) replacedHint(ctx context.Context, sel string, err error) error {
	if !errors.Is(err, repository.ErrSnapshotNotFound) || sel == "latest" {
		return err
	}
	m, lerr := c.repo.SnapshotReplacements(ctx)
	if lerr != nil {
		return err
	}
	for o := range m {
		if strings.HasPrefix(o.String(), sel) {
			n := repository.ResolveReplacement(m, o)
			return fmt.Errorf("%w (snapshot %s was re-sealed by prune --rewrite-old-terms and is now %s)", err, o.Short(), n.Short())
		}
	}
	return err
}

// Prune takes prune's lock (refusing while another prune runs) and prunes.
// A report is returned whenever prune got far enough to make one, also
// with an error.
func (c *Client) Prune(ctx context.Context, o maintenance.PruneOptions) (*maintenance.PruneReport, error) {
	lock, err := maintenance.AcquireLock(ctx, c.repo, o.RewriteOldTerms)
	if err != nil {
		return nil, err
	}
	defer func() { _ = lock.Unlock(context.WithoutCancel(ctx)) }()
	o.Lock = lock
	return maintenance.Prune(ctx, c.repo, o)
}
