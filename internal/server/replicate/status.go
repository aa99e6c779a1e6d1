package replicate

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/coffer-backup/coffer/internal/schedule"
	"github.com/coffer-backup/coffer/internal/serverdb"
)

// Status is where a target stands: its settings and last outcome from
// the DB, and what is pending, counted from the primary's objects now.
type Status struct {
	serverdb.ReplicaTarget
	Replicated      int64     // objects the target holds, verified
	ReplicatedBytes int64     // their bytes
	PendingObjects  int64     // objects at the primary the target does not hold yet
	PendingBytes    int64     // their bytes
	OldestPending   time.Time // when the oldest of them was written; zero: none
	Lag             time.Duration
	KeptDeleted     int64 // objects the primary deleted that the target still keeps
	LockedDeleted   int64 // of those, the ones an object lock still holds
	HeldRecords     int64 // deletion records (forgets, condemned) held back for keep-deleted
	// EarliestRetention is when the first object lock of what the primary
	// still has ends (zero: nothing is locked); passes extend it before.
	EarliestRetention time.Time
}

// StatusDB is the state database as StatusOf reads it.
type StatusDB interface {
	ReplicaTarget(ctx context.Context, name string) (serverdb.ReplicaTarget, error)
	ReplicaKeys(ctx context.Context, target string) ([]serverdb.ReplicaKey, error)
	ReplicaSummaryOf(ctx context.Context, target string, at time.Time) (serverdb.ReplicaSummary, error)
}

// StatusOf computes the status of target name at now. What the target
// holds comes from the DB (counted there, and matched by key: no record
// is read whole); the target itself is not listed.
func StatusOf(ctx context.Context, src Source, db StatusDB, name string, now time.Time) (Status, error) {
	cfg, err := db.ReplicaTarget(ctx, name)
	if err != nil {
		return Status{}, err
	}
	st := Status{ReplicaTarget: cfg}
	sum, err := db.ReplicaSummaryOf(ctx, name, now)
	if err != nil {
		return st, err
	}
	st.Replicated, st.ReplicatedBytes, st.KeptDeleted, st.LockedDeleted = sum.Objects, sum.Bytes, sum.Deleted, sum.Locked
	st.EarliestRetention = sum.EarliestRetention
	repos, err := src.Repos(ctx, cfg.Clients)
	if err != nil {
		return st, err
	}
	keys, err := db.ReplicaKeys(ctx, name)
	if err != nil {
		return st, err
	}
	have := make(map[serverdb.ReplicaKey]bool, len(keys))
	for _, k := range keys {
		have[k] = true
	}
	for _, k := range repos {
		if err := st.countPending(ctx, src, k, have, now); err != nil {
			return st, err
		}
	}
	if !st.OldestPending.IsZero() {
		st.Lag = max(now.Sub(st.OldestPending), 0)
	}
	return st, nil
}

// countPending adds what the target does not hold of repository k.
func (st *Status) countPending(ctx context.Context, src Source, k RepoKey, have map[serverdb.ReplicaKey]bool, now time.Time) error {
	objs, err := src.objects(ctx, k)
	if err != nil {
		return err
	}
	for h, o := range objs {
		if have[serverdb.ReplicaKey{Client: k.Client, Repo: k.Repo, Kind: string(h.Kind), Name: h.Name}] {
			continue
		}
		if destructive(h.Kind) && now.Sub(o.mtime) < st.KeepDeleted {
			st.HeldRecords++
			continue
		}
		st.PendingObjects++
		st.PendingBytes += o.size
		if st.OldestPending.IsZero() || o.mtime.Before(st.OldestPending) {
			st.OldestPending = o.mtime
		}
	}
	return nil
}

// Scheduler runs the passes of every target with a schedule, inside its
// window, in the running server. A pass already running in another
// process (replicate run) is left to finish.
type Scheduler struct {
	Dir    string
	Source Source
	DB     AdminDB
	Logger *slog.Logger
	// Tick is how often the targets are looked at (default 10 s).
	Tick time.Duration
	Now  func() time.Time
}

// Run looks at the targets every Tick until ctx is done.
func (s *Scheduler) Run(ctx context.Context) {
	if s.Tick <= 0 {
		s.Tick = 10 * time.Second
	}
	if s.Now == nil {
		s.Now = time.Now
	}
	if s.Logger == nil {
		s.Logger = slog.New(slog.DiscardHandler)
	}
	t := time.NewTicker(s.Tick)
	defer t.Stop()
	for {
		s.runDue(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// due reports whether target t's next scheduled pass has come, and until
// when its window lets it run (zero: no end).
func due(t serverdb.ReplicaTarget, now time.Time) (bool, time.Time) {
	if t.Schedule == "" {
		return false, time.Time{}
	}
	sched, err := schedule.Parse(t.Schedule)
	if err != nil {
		return false, time.Time{}
	}
	last := t.LastStart
	if last.IsZero() {
		last = t.Created
	}
	if now.Before(sched.In(time.Local).Next(last)) {
		return false, time.Time{}
	}
	w, err := schedule.ParseWindow(t.Window)
	if err != nil {
		return false, time.Time{}
	}
	w = w.In(time.Local)
	from, until := w.Open(now)
	if !from.Equal(now) {
		return false, time.Time{}
	}
	return true, until
}

func (s *Scheduler) runDue(ctx context.Context) {
	targets, err := s.DB.ReplicaTargets(ctx)
	if err != nil {
		s.Logger.Warn("replication targets", "err", err)
		return
	}
	for _, t := range targets {
		ok, until := due(t, s.Now())
		if !ok || ctx.Err() != nil {
			continue
		}
		s.runOne(ctx, t.Name, until)
	}
}

func (s *Scheduler) runOne(ctx context.Context, name string, until time.Time) {
	unlock, err := Lock(ctx, s.Dir, name, false)
	if err != nil {
		s.Logger.Info("replication pass skipped", "target", name, "err", err)
		return
	}
	defer unlock()
	if !until.IsZero() {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, until)
		defer cancel()
	}
	rep, err := Run(ctx, name, PassOptions{Dir: s.Dir, Source: s.Source, DB: s.DB, Now: s.Now, Logger: s.Logger})
	if errors.Is(err, ErrBusy) {
		s.Logger.Info("replication pass skipped", "target", name, "err", err)
		return
	}
	if err != nil {
		s.Logger.Warn("replication pass failed", "target", name, "err", err)
		return
	}
	s.Logger.Info("replication pass complete", "target", name, "sent", rep.Sent, "bytes", rep.SentBytes,
		"adopted", rep.Adopted, "deleted", rep.Deleted, "kept", rep.Kept, "duration", rep.Duration.Round(time.Millisecond).String())
}
