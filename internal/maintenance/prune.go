package maintenance

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/coffer-backup/coffer/internal/repository"
)

// Sentinel errors of prune.
var (
	// ErrPruneRunning: another prune holds a lock. It wraps
	// repository.ErrLocked, so the CLI exits with the "locked" code.
	ErrPruneRunning = fmt.Errorf("%w: another prune is running", repository.ErrLocked)
	// ErrUnsafe: prune found something it cannot reason about (a snapshot
	// that does not load, a used blob that no existing pack holds) and
	// stopped before deleting anything. Run `coffer check`.
	ErrUnsafe = errors.New("prune refused: the repository needs checking")
)

// PruneLockOperation is the operation name of prune's lock.
const PruneLockOperation = "prune"

// Defaults of PruneOptions.
const (
	DefaultSafetyMargin = time.Hour
	DefaultClockSkew    = 10 * time.Minute
)

// PruneOptions configure PlanPrune and Prune. The zero value (plus a
// MaxUnused) works.
type PruneOptions struct {
	// DryRun makes Prune return the plan's report without executing it;
	// PlanPrune ignores it.
	DryRun bool
	// MaxUnused: see MaxUnused; the zero value repacks every pack with any
	// unused blob.
	MaxUnused MaxUnused
	// SafetyMargin: a pack no index names is deleted only when it has been
	// condemned at least this long and no other lock exists. Zero means
	// DefaultSafetyMargin; use a negative value for none (tests).
	SafetyMargin time.Duration
	// ClockSkew is added to a condemned record's time when comparing it
	// with lock start times, to cover clocks of other hosts and the time it
	// took to store the record. Zero means DefaultClockSkew; negative: none.
	ClockSkew time.Duration
	// RewriteOldTerms moves everything sealed with an older key term to
	// the current one: packs are repacked, the index rewritten, forget and
	// condemned records re-sealed, and snapshots replaced under new IDs
	// (repository.ReplaceSnapshots); the report lists what is left. The
	// caller should hold an exclusive lock.
	RewriteOldTerms bool
	// Lock is prune's own lock (not counted as another process's); nil
	// when the caller holds none.
	Lock *repository.HeldLock
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
	// Log receives progress messages; nil discards them.
	Log func(format string, args ...any)

	// indexFileBlobs is how many blobs one index file written by prune
	// holds at most; zero means repository.DefaultIndexFileBlobs. Tests
	// set it to split small repositories, each on its own run.
	indexFileBlobs int
}

// AcquireLock takes prune's lock and refuses when another prune holds one
// (two prunes could each delete what the other just rescued).
func AcquireLock(ctx context.Context, r *repository.Repository, exclusive bool) (*repository.HeldLock, error) {
	l, err := r.Lock(ctx, PruneLockOperation, exclusive)
	if err != nil {
		return nil, err
	}
	locks, err := r.LoadLocks(ctx)
	if err != nil {
		_ = l.Unlock(ctx)
		return nil, err
	}
	now, host := time.Now(), repository.Hostname()
	own := l.Info()
	for _, x := range locks {
		if x.Operation == PruneLockOperation && !isOwn(x, &own) && !x.Stale(now, host) {
			_ = l.Unlock(ctx)
			return nil, fmt.Errorf("%w: %s", ErrPruneRunning, x)
		}
	}
	return l, nil
}

func isOwn(l *repository.LockInfo, own *repository.LockInfo) bool {
	if own == nil {
		return false
	}
	return l.ID == own.ID || (l.Host == own.Host && l.PID == own.PID && l.Operation == own.Operation && l.Started.Equal(own.Started))
}

// Prune plans and, unless DryRun, executes: PlanPrune, then Execute. With
// DryRun it returns the plan's report and changes nothing.
func Prune(ctx context.Context, r *repository.Repository, o PruneOptions) (*PruneReport, error) {
	plan, err := PlanPrune(ctx, r, o)
	if err != nil {
		return nil, err
	}
	if o.DryRun {
		return plan.Report(), nil
	}
	return plan.Execute(ctx)
}
