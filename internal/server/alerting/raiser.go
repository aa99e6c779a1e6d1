// Package alerting wires the server's events to its alert dispatcher:
// finished and missed jobs, offline agents, expiring client certificates,
// the TLS self-audit and replication lag become alert.Events, and the
// alert channels are administered with their secrets kept in files.
package alerting

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/coffer-backup/coffer/internal/alert"
	"github.com/coffer-backup/coffer/internal/fleet/api"
	"github.com/coffer-backup/coffer/internal/server/fleet/control"
)

// queueSize bounds the events waiting to be stored in the outbox; beyond
// it an event is dropped and logged rather than blocking its caller.
const queueSize = 4096

// Enqueuer stores an event for its channels (*alert.Dispatcher).
type Enqueuer interface {
	Enqueue(ctx context.Context, e alert.Event) (int, error)
}

// Raiser hands events to the dispatcher's outbox from one goroutine, so
// that raising one never waits for the database, let alone a channel:
// an unreachable channel never blocks a job or a report.
type Raiser struct {
	out    Enqueuer
	groups func(ctx context.Context, client string) (string, error)
	log    *slog.Logger
	queue  chan alert.Event
}

// NewRaiser returns a Raiser over out. groups, if set, gives a client's
// group (for channels scoped to groups); log gets dropped and failed
// events.
func NewRaiser(out Enqueuer, groups func(ctx context.Context, client string) (string, error), log *slog.Logger) *Raiser {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Raiser{out: out, groups: groups, log: log, queue: make(chan alert.Event, queueSize)}
}

// Raise queues e without blocking; a full queue drops it with a log line.
func (r *Raiser) Raise(e alert.Event) {
	select {
	case r.queue <- e:
	default:
		r.log.Error("alert queue full: event dropped", "kind", e.Kind, "client", e.Client)
	}
}

// Run stores queued events until ctx is done, then the ones still queued.
func (r *Raiser) Run(ctx context.Context) {
	for {
		select {
		case e := <-r.queue:
			r.store(ctx, e)
		case <-ctx.Done():
			r.drain()
			return
		}
	}
}

// drain stores what is queued at shutdown, within a few seconds.
func (r *Raiser) drain() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for {
		select {
		case e := <-r.queue:
			r.store(ctx, e)
		default:
			return
		}
	}
}

func (r *Raiser) store(ctx context.Context, e alert.Event) {
	if e.Client != "" && r.groups != nil && len(e.Groups) == 0 {
		if g, err := r.groups(ctx, e.Client); err == nil && g != "" {
			e.Groups = []string{g}
		}
	}
	if _, err := r.out.Enqueue(ctx, e); err != nil && ctx.Err() == nil {
		r.log.Error("alert not queued", "kind", e.Kind, "client", e.Client, "err", err)
	}
}

// Control raises the alert of a control event (control.Config.Notify): a
// missed backup, or a job that reached a final state. Events no alert
// kind covers (a cancelled backup, an agent's refused policy) raise none.
func (r *Raiser) Control(e control.Event) {
	if ev, ok := FromControl(e); ok {
		r.Raise(ev)
	}
}

// FromControl maps a control event to its alert: a backup's state to
// backup-succeeded, -warning, -failed, -skipped or -missed; a failed
// check to check-failed; any finished prune to prune-done and restore to
// restore-finished. ok is false for the rest.
func FromControl(e control.Event) (alert.Event, bool) {
	j := e.Job
	kind, ok := controlKind(api.JobKind(j.Kind), api.JobState(j.State))
	if !ok {
		return alert.Event{}, false
	}
	summary := fmt.Sprintf("%s of %s: %s", j.Kind, e.Client, j.State)
	if j.Repository != "" {
		summary = fmt.Sprintf("%s of %s, repository %s: %s", j.Kind, e.Client, j.Repository, j.State)
	}
	details := map[string]string{"job": j.ID, "kind": j.Kind, "state": j.State}
	set := func(k, v string) {
		if v != "" {
			details[k] = v
		}
	}
	set("repository", j.Repository)
	set("error", j.Error)
	set("snapshot", j.Snapshot)
	if j.Error != "" {
		summary += ": " + j.Error
	}
	if j.Scheduled {
		details["scheduled"] = "true"
	}
	at := e.Time
	if at.IsZero() {
		at = time.Now()
	}
	return alert.Event{Kind: kind, Client: e.Client, Time: at.UTC(), JobID: j.ID, Summary: summary, Details: details}, true
}

func controlKind(kind api.JobKind, state api.JobState) (alert.Kind, bool) {
	switch kind {
	case api.KindBackup:
		k, ok := map[api.JobState]alert.Kind{
			api.StateSucceeded: alert.BackupSucceeded, api.StateWarning: alert.BackupWarning,
			api.StateFailed: alert.BackupFailed, api.StateSkipped: alert.BackupSkipped, api.StateMissed: alert.BackupMissed,
		}[state]
		return k, ok
	case api.KindCheck:
		return alert.CheckFailed, state == api.StateFailed
	case api.KindPrune:
		return alert.PruneDone, state.Final() && state != api.StateCancelled
	case api.KindRestore:
		return alert.RestoreFinished, state.Final()
	}
	return "", false
}
