// Package audit keeps the server's audit log (internal/auditlog) in the
// state directory's audit/ with its chain head in the state database, and
// feeds it the database's events and the fleet's records.
package audit

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/coffer-backup/coffer/internal/auditlog"
	"github.com/coffer-backup/coffer/internal/server/state"
	"github.com/coffer-backup/coffer/internal/serverdb"
)

// Auditor records one entry in the audit log. Record returns once the
// entry is durable in the log and its head is stored; the log fills in
// Seq, Time, Prev and Hash. An error means the entry is not recorded: a
// caller auditing an action it is about to take should not take it.
// The fleet server (internal/server/fleet) records through it.
type Auditor interface {
	Record(ctx context.Context, e auditlog.Entry) error
}

// Store is what a Trail needs of the state database.
type Store interface {
	EventsAfter(ctx context.Context, after int64, limit int) ([]serverdb.Event, error)
	AuditHead(ctx context.Context) (serverdb.AuditHead, error)
	SwapAuditHead(ctx context.Context, old, h serverdb.AuditHead) error
}

// Defaults of Options' zero fields.
const (
	DefaultPollInterval       = 500 * time.Millisecond
	DefaultCheckpointInterval = time.Hour
	eventBatch                = 256
)

// ErrHeadMismatch wraps the error of Open when the log and the head kept
// in the database disagree beyond what a crash leaves: the server does not
// start (`coffer server audit verify` names the first bad entry).
var ErrHeadMismatch = errors.New("the audit log does not match the chain head kept in the database")

// Options configure Open. Dir, DB and Key are required.
type Options struct {
	Dir string             // the state directory; the log is Dir/audit
	DB  Store              // where the chain head is kept, and the events come from
	Key ed25519.PrivateKey // signs checkpoints (state.EnsureAuditKey)
	// Sinks receive each entry as it is appended (an AsyncSink for syslog).
	Sinks []auditlog.Sink
	// PollInterval is how often Run takes new events from the database
	// (0: DefaultPollInterval); Wake takes them at once.
	PollInterval time.Duration
	// CheckpointInterval is how often Run appends a checkpoint when
	// entries followed the last one (0: DefaultCheckpointInterval).
	CheckpointInterval time.Duration
	// CheckpointEvery is passed to auditlog (0: its default).
	CheckpointEvery int
	Logger          *slog.Logger     // nil: slog.Default()
	Now             func() time.Time // nil: time.Now
}

// Trail is an open audit log with its head kept in the database. One
// process appends at a time: the server, holding the state directory's
// lock. Its methods are safe for concurrent use.
type Trail struct {
	opts Options
	log  *auditlog.Log
	wake chan struct{}

	mu      sync.Mutex // orders appends with the head stores that follow them
	eventID int64      // the last event appended
	kept    serverdb.AuditHead
	lost    error // set when another server stored a head: nothing more is appended
}

var _ Auditor = (*Trail)(nil)

// Open opens Dir/audit, settles what a crash left (a partial last line;
// entries appended before their head was stored, see auditlog.Reconcile),
// stores the resulting head and appends the events the database holds
// that the log does not yet have. A log that disagrees with the kept head
// in any other way fails with ErrHeadMismatch and is left untouched.
func Open(ctx context.Context, opts Options) (*Trail, error) {
	if opts.DB == nil || opts.Dir == "" {
		return nil, errors.New("open audit trail: Dir and DB are required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = DefaultPollInterval
	}
	if opts.CheckpointInterval <= 0 {
		opts.CheckpointInterval = DefaultCheckpointInterval
	}
	kept, err := opts.DB.AuditHead(ctx)
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(opts.Dir, state.AuditDir)
	l, err := auditlog.Open(dir, auditlog.Options{Key: opts.Key, CheckpointEvery: opts.CheckpointEvery, Now: opts.Now, Sinks: opts.Sinks, Logger: opts.Logger})
	if err != nil {
		return nil, fmt.Errorf("%w: %w (run coffer server audit verify --dir %s)", ErrHeadMismatch, err, opts.Dir)
	}
	adopted, err := l.Reconcile(auditlog.Head{Seq: kept.Seq, Hash: kept.Hash})
	if err != nil {
		_ = l.Abandon()
		return nil, fmt.Errorf("%w: %w (run coffer server audit verify --dir %s)", ErrHeadMismatch, err, opts.Dir)
	}
	t := &Trail{opts: opts, log: l, wake: make(chan struct{}, 1), eventID: kept.EventID, kept: kept}
	for _, e := range adopted {
		if id, err := strconv.ParseInt(e.Details[detailEvent], 10, 64); err == nil && id > t.eventID {
			t.eventID = id
		}
	}
	t.mu.Lock()
	err = t.storeHead(ctx)
	t.mu.Unlock()
	if err == nil {
		err = t.Sync(ctx)
	}
	if err != nil {
		_ = l.Abandon()
		return nil, err
	}
	return t, nil
}

// storeHead keeps the log's head and the event cursor in the database,
// in place of the head it stored last. When another server stored one
// since (serverdb.ErrConflict), the trail stops: nothing more is appended,
// so the chain the database keeps never forks. t.mu is held.
func (t *Trail) storeHead(ctx context.Context) error {
	h := t.log.Head()
	next := serverdb.AuditHead{Seq: h.Seq, Hash: h.Hash, EventID: t.eventID}
	err := t.opts.DB.SwapAuditHead(ctx, t.kept, next)
	if errors.Is(err, serverdb.ErrConflict) {
		t.lost = err
	}
	if err != nil {
		return fmt.Errorf("audit log: store its head (seq %d): %w", h.Seq, err)
	}
	t.kept = next
	return nil
}

// usable fails once the trail has stopped; t.mu is held.
func (t *Trail) usable() error {
	if t.lost != nil {
		return fmt.Errorf("audit log: stopped: %w", t.lost)
	}
	return nil
}

// Lost reports why the trail stopped appending (another server stored a
// head), or nil.
func (t *Trail) Lost() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.lost
}

// Record implements Auditor.
func (t *Trail) Record(ctx context.Context, e auditlog.Entry) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.usable(); err != nil {
		return err
	}
	if _, err := t.log.Append(e); err != nil {
		return err
	}
	return t.storeHead(ctx)
}

// Sync stores the head if an append's store failed, then appends every
// event the database holds after the last one the log has, in order, each
// followed by storing the head with its ID.
func (t *Trail) Sync(ctx context.Context) error {
	for {
		t.mu.Lock()
		err := t.usable()
		if err == nil && (t.kept.Seq != t.log.Head().Seq || t.kept.EventID != t.eventID) {
			// An append whose head could not be stored (the database was
			// away): store it now rather than at the next entry, so the
			// log is not left ahead of the kept head meanwhile.
			err = t.storeHead(ctx)
		}
		var evs []serverdb.Event
		if err == nil {
			evs, err = t.opts.DB.EventsAfter(ctx, t.eventID, eventBatch)
		}
		if err == nil {
			err = t.appendEvents(ctx, evs)
		}
		t.mu.Unlock()
		if err != nil || len(evs) < eventBatch {
			return err
		}
	}
}

// appendEvents appends evs; t.mu is held.
func (t *Trail) appendEvents(ctx context.Context, evs []serverdb.Event) error {
	for _, ev := range evs {
		e, err := entryOf(ev)
		if err == nil {
			_, err = t.log.Append(e)
		}
		if errors.Is(err, auditlog.ErrInvalidEntry) {
			// Never stall the feed on one event: record that it could not be.
			e = unrecordable(ev, err)
			_, err = t.log.Append(e)
		}
		if err != nil {
			return fmt.Errorf("audit log: append event %d: %w", ev.ID, err)
		}
		t.eventID = ev.ID
		if err := t.storeHead(ctx); err != nil {
			return err
		}
	}
	return nil
}

// Wake makes Run take new events now rather than at its next poll.
func (t *Trail) Wake() {
	select {
	case t.wake <- struct{}{}:
	default:
	}
}

// Run takes new events every PollInterval (or on Wake) and appends a
// checkpoint every CheckpointInterval, until ctx is done. Failures are
// logged and retried at the next poll.
func (t *Trail) Run(ctx context.Context) {
	poll := time.NewTicker(t.opts.PollInterval)
	defer poll.Stop()
	ckpt := time.NewTicker(t.opts.CheckpointInterval)
	defer ckpt.Stop()
	failing := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-poll.C:
		case <-t.wake:
		case <-ckpt.C:
			if err := t.Checkpoint(ctx); err != nil {
				t.opts.Logger.Error("audit log: checkpoint", "err", err)
			}
			continue
		}
		err := t.Sync(ctx)
		switch {
		case err != nil && !failing && ctx.Err() == nil:
			t.opts.Logger.Error("audit log: append the database's events (retrying)", "err", err)
			failing = true
		case err == nil && failing:
			t.opts.Logger.Info("audit log: appending the database's events again")
			failing = false
		}
	}
}

// Checkpoint appends a signed checkpoint if entries followed the last one,
// and stores the head.
func (t *Trail) Checkpoint(ctx context.Context) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.usable(); err != nil {
		return err
	}
	e, err := t.log.Checkpoint()
	if err != nil || e.Seq == 0 {
		return err
	}
	return t.storeHead(ctx)
}

// Head returns the log's current chain head.
func (t *Trail) Head() auditlog.Head { return t.log.Head() }

// Close takes the last events, appends a checkpoint, closes the log and
// stores its final head.
func (t *Trail) Close(ctx context.Context) error {
	serr := t.Sync(ctx)
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.lost != nil {
		return errors.Join(serr, t.log.Abandon())
	}
	err := t.log.Close()
	if herr := t.storeHead(ctx); err == nil {
		err = herr
	}
	return errors.Join(serr, err)
}
