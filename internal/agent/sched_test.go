package agent

import (
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/coffer-backup/coffer/internal/fleet/api"
	"github.com/coffer-backup/coffer/internal/fleet/policy"
)

// A failed scheduled run is retried after the interval, then the interval
// times the factor, at most the attempts; a success or a regular start
// resets the count.
func TestRetriesFollowPolicy(t *testing.T) {
	t.Parallel()
	f := newFleet(t, "web12")
	a, err := newAgent(Config{IdentityDir: f.dir, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	p := testPolicy(f.client, 1, "/tmp/x", "@daily", "/src")
	p.Repositories[0].Retry = policy.Retry{Interval: policy.Duration(time.Minute), Factor: 2, Attempts: 2}
	a.setPolicy(p)
	tr := a.plans["main"].backup
	if tr.regular.IsZero() || !tr.retryAt.IsZero() {
		t.Fatalf("trigger %+v", tr)
	}
	end := time.Now()
	fail := func() {
		a.retryAfter(&job{repo: "main", scheduled: true, trig: tr, state: api.StateFailed, end: end})
	}
	fail()
	if got := tr.retryAt.Sub(end); got != time.Minute {
		t.Fatalf("first retry after %s, want 1m", got)
	}
	fail()
	if got := tr.retryAt.Sub(end); got != 2*time.Minute {
		t.Fatalf("second retry after %s, want 2m", got)
	}
	tr.retryAt = time.Time{}
	fail()
	if !tr.retryAt.IsZero() {
		t.Fatalf("a third retry of 2 attempts at %s", tr.retryAt)
	}
	a.retryAfter(&job{repo: "main", scheduled: true, trig: tr, state: api.StateSucceeded, end: end})
	if tr.failures != 0 {
		t.Fatalf("failures %d after a success", tr.failures)
	}
	// A job of an older plan does not touch the current one.
	a.setPolicy(p)
	a.retryAfter(&job{repo: "main", scheduled: true, trig: tr, state: api.StateFailed, end: end})
	if now := a.plans["main"].backup; !now.retryAt.IsZero() {
		t.Fatal("a job of a replaced plan planned a retry")
	}
}

// A scheduled run that finds its repository busy is reported skipped and
// the schedule moves on.
func TestScheduledRunSkippedWhenBusy(t *testing.T) {
	t.Parallel()
	f := newFleet(t, "web13")
	a, err := newAgent(Config{IdentityDir: f.dir, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	a.setPolicy(testPolicy(f.client, 1, "/tmp/x", "every 10s", "/src"))
	busy := &job{id: id1, kind: api.KindBackup, repo: "main"}
	a.jobs["main"] = busy
	tr := a.plans["main"].backup
	now := tr.regular
	a.fire(t.Context(), now)
	if !tr.regular.After(now) {
		t.Fatalf("next run %s not after %s", tr.regular, now)
	}
	_, r, ok, err := a.queue.Peek()
	if err != nil || !ok || r.State != api.StateSkipped || !r.Scheduled || r.Job == id1 {
		t.Fatalf("report %+v, %v, %v", r, ok, err)
	}
	if a.starts.get("main", "backup").IsZero() {
		t.Error("the skipped start was not recorded")
	}
}
