package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/coffer-backup/coffer/internal/auditlog"
	"github.com/coffer-backup/coffer/internal/server/audit"
	"github.com/coffer-backup/coffer/internal/server/fleet"
	"github.com/coffer-backup/coffer/internal/serverdb"
)

// DefaultAuditTakeover is how often a server that does not write the
// audit log checks whether it can take the writer's place, and the writer
// checks that it still holds it.
const DefaultAuditTakeover = 5 * time.Second

// auditElection keeps one audit log writer among the servers sharing a
// database (docs/server.md, "The audit log with several servers"). The
// server holding serverdb.AuditWriter runs the Trail on its D/audit; the
// others record through an audit.Forwarder, and try every interval to
// take over. A server whose D/audit is not at the chain head the
// database keeps cannot open the Trail (audit.ErrHeadMismatch) and stays
// a forwarder, so the chain never forks: the events wait in the database
// for a writer whose log is at the head.
type auditElection struct {
	db       *serverdb.Store
	open     func(ctx context.Context) (*audit.Trail, func(), error)
	log      *slog.Logger
	interval time.Duration
	// stopped, if set, is told when no server writes the log and this
	// one cannot (the audit-log-stopped alert): once, until a takeover
	// succeeds or the reason changes.
	stopped func(msg string)

	mu     sync.RWMutex
	trail  *audit.Trail // nil while another server writes
	closeT func()
	writer *serverdb.AuditWriter
}

var _ audit.Auditor = (*auditElection)(nil)

// Record implements audit.Auditor: through the Trail while this server
// writes the log, through the database otherwise.
func (a *auditElection) Record(ctx context.Context, e auditlog.Entry) error {
	a.mu.RLock()
	t := a.trail
	a.mu.RUnlock()
	if t != nil {
		return t.Record(ctx, e)
	}
	return (&audit.Forwarder{DB: a.db}).Record(ctx, e)
}

// Sync appends the events the database holds that the log does not yet
// have, so a read of the log that follows sees every event committed
// before it. It fails with fleet.ErrNotAuditWriter while another server
// writes the log.
func (a *auditElection) Sync(ctx context.Context) error {
	a.mu.RLock()
	t := a.trail
	a.mu.RUnlock()
	if t == nil {
		return fleet.ErrNotAuditWriter
	}
	return t.Sync(ctx)
}

// start takes the writer's place if it is free and opens the Trail: an
// error then stops the server from starting, as with one server. With
// the place taken, the server starts as a forwarder.
func (a *auditElection) start(ctx context.Context) error {
	w, err := a.db.TryAuditWriter(ctx)
	if err != nil {
		return err
	}
	if w == nil {
		a.log.Info("audit log: another server sharing the database writes it; this one forwards its entries through the database")
		return nil
	}
	t, closeT, err := a.open(ctx)
	if err != nil {
		_ = w.Release()
		return err
	}
	a.set(t, closeT, w)
	return nil
}

func (a *auditElection) set(t *audit.Trail, closeT func(), w *serverdb.AuditWriter) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.trail, a.closeT, a.writer = t, closeT, w
}

// run runs the Trail while this server writes and tries to take over
// while it does not, until ctx is done.
func (a *auditElection) run(ctx context.Context) {
	var reported error // why the last failed takeover failed, as reported
	for ctx.Err() == nil {
		a.mu.RLock()
		t := a.trail
		a.mu.RUnlock()
		if t != nil {
			a.write(ctx, t)
			continue
		}
		took, err := a.takeOver(ctx)
		if took {
			reported = nil
			continue
		}
		// Each reason is reported once, and again when it changes: a
		// database that was away and is back with a log that cannot be
		// opened is reported, not hidden behind the outage's warning.
		if why := takeoverFailure(err); why != nil && why != reported && ctx.Err() == nil {
			a.report(why, err)
			reported = why
		}
		select {
		case <-ctx.Done():
		case <-time.After(a.interval):
		}
	}
}

// write runs t until ctx is done or this server stops being the writer
// (its lock's connection failed, or another server stored a head).
func (a *auditElection) write(ctx context.Context, t *audit.Trail) {
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t.Run(rctx)
	}()
	tick := time.NewTicker(a.interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			cancel()
			<-done
			return
		case <-tick.C:
		}
		a.mu.RLock()
		w := a.writer
		a.mu.RUnlock()
		err := t.Lost()
		if err == nil {
			err = w.Check(ctx)
		}
		if err != nil && ctx.Err() == nil {
			cancel()
			<-done
			a.log.Error("audit log: this server no longer writes it; forwarding its entries through the database", "err", err)
			a.resign()
			return
		}
	}
}

// resign closes the Trail and gives up the writer's place.
func (a *auditElection) resign() {
	a.mu.Lock()
	closeT, w := a.closeT, a.writer
	a.trail, a.closeT, a.writer = nil, nil, nil
	a.mu.Unlock()
	if closeT != nil {
		closeT()
	}
	if w != nil {
		_ = w.Release()
	}
}

// errNotWriter: the writer's place is free, but this server's log
// cannot take it.
var errNotWriter = errors.New("no server writes the audit log, and this one cannot")

// takeOver tries to become the writer; it reports whether it did, and
// why not when the place was free or could not be checked.
func (a *auditElection) takeOver(ctx context.Context) (bool, error) {
	w, err := a.db.TryAuditWriter(ctx)
	if err != nil || w == nil {
		return false, err
	}
	t, closeT, err := a.open(ctx)
	if err != nil {
		_ = w.Release()
		return false, fmt.Errorf("%w: %w", errNotWriter, err)
	}
	a.log.Info("audit log: this server writes it now", "seq", t.Head().Seq)
	a.set(t, closeT, w)
	return true, nil
}

// errCannotCheck classes a takeover that could not reach the database.
var errCannotCheck = errors.New("cannot check the audit writer's place")

// takeoverFailure classes why a takeover failed (nil: it did not fail,
// the place was taken).
func takeoverFailure(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, audit.ErrHeadMismatch):
		return audit.ErrHeadMismatch
	case serverdb.Unavailable(err):
		// The database went away between taking the place and opening
		// the log: not a log that cannot be written.
		return errCannotCheck
	case errors.Is(err, errNotWriter):
		return errNotWriter
	default:
		return errCannotCheck
	}
}

// report logs err, a failed takeover of class why (takeoverFailure),
// and, when no server can write the log, raises the audit-log-stopped
// alert.
func (a *auditElection) report(why, err error) {
	var msg string
	switch why {
	case audit.ErrHeadMismatch:
		msg = "no server writes the audit log, and this one cannot: its log is not at the chain head the database keeps; the events wait in the database (restart the writer, or copy its audit directory here; coffer server audit verify names the first entry that differs)"
	case errNotWriter:
		msg = "no server writes the audit log, and this one cannot open it; the events wait in the database"
	default:
		a.log.Warn("audit log: cannot check the writer's place", "err", err)
		return
	}
	a.log.Error("audit log: "+msg, "err", err)
	if a.stopped != nil {
		a.stopped(msg)
	}
}

// close closes the Trail, if this server writes it, and gives up the
// writer's place.
func (a *auditElection) close() { a.resign() }
