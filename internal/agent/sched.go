package agent

import (
	"context"
	"time"

	"github.com/coffer-backup/coffer/internal/fleet/api"
	"github.com/coffer-backup/coffer/internal/fleet/policy"
	"github.com/coffer-backup/coffer/internal/schedule"
)

// plan is one policy repository's schedule: its backups and, with a
// check schedule, its checks. Prunes run on the server's clock: it orders
// them.
type plan struct {
	repo   policy.Repository
	backup *trigger
	check  *trigger // nil: no check schedule
}

// trigger is when one kind of scheduled job runs next.
type trigger struct {
	kind    api.JobKind
	sched   schedule.Schedule
	timing  schedule.Timing
	regular time.Time // the next run of the schedule
	retryAt time.Time // a retry after a failure; zero: none
	// failures counts consecutive failures since the last regular start.
	failures int
}

// due is the trigger's next start: the earlier of its regular run and a
// pending retry.
func (t *trigger) due() time.Time {
	if !t.retryAt.IsZero() && (t.regular.IsZero() || t.retryAt.Before(t.regular)) {
		return t.retryAt
	}
	return t.regular
}

// setPolicy puts p in force and plans every repository's next runs from
// the last starts, on the host's wall clock.
func (a *Agent) setPolicy(p *policy.Policy) {
	a.policy = p
	a.gen.Store(p.Generation)
	now := time.Now()
	plans := make(map[string]*plan, len(p.Repositories))
	for _, r := range p.Repositories {
		s, t, err := r.Timing()
		if err != nil {
			continue // Verify validated every schedule; unreachable
		}
		t = t.In(time.Local)
		pl := &plan{repo: r, backup: &trigger{kind: api.KindBackup, sched: s.In(time.Local), timing: t}}
		if r.Check != nil {
			if cs, err := schedule.Parse(r.Check.Schedule); err == nil {
				ct := t
				ct.Retry = schedule.Retry{}
				pl.check = &trigger{kind: api.KindCheck, sched: cs.In(time.Local), timing: ct}
			}
		}
		for _, tr := range pl.triggers() {
			tr.regular = tr.timing.NextRun(tr.sched, a.id.client, a.starts.get(r.Name, string(tr.kind)), now)
			a.log.Info("scheduled", "repository", r.Name, "kind", tr.kind, "schedule", tr.sched.String(), "next", tr.regular.Format(time.RFC3339))
		}
		plans[r.Name] = pl
	}
	a.plans = plans
}

func (p *plan) triggers() []*trigger {
	if p.check == nil {
		return []*trigger{p.backup}
	}
	return []*trigger{p.backup, p.check}
}

// resetTimer sets timer to the earliest due trigger (an hour when none).
func (a *Agent) resetTimer(timer *time.Timer, now time.Time) {
	next := now.Add(time.Hour)
	for _, p := range a.plans {
		for _, tr := range p.triggers() {
			if d := tr.due(); !d.IsZero() && d.Before(next) {
				next = d
			}
		}
	}
	timer.Reset(max(next.Sub(now), 0))
}

// fire starts every trigger that is due at now.
func (a *Agent) fire(ctx context.Context, now time.Time) {
	for name, p := range a.plans {
		for _, tr := range p.triggers() {
			if d := tr.due(); d.IsZero() || d.After(now) {
				continue
			}
			a.fireTrigger(ctx, name, p, tr, now)
		}
	}
}

func (a *Agent) fireTrigger(ctx context.Context, name string, p *plan, tr *trigger, now time.Time) {
	retry := !tr.retryAt.IsZero() && !tr.retryAt.After(now) && tr.regular.After(now)
	tr.retryAt = time.Time{}
	if !retry {
		tr.failures = 0
		a.starts.set(name, string(tr.kind), now)
		if err := a.starts.save(a.cfg.IdentityDir); err != nil {
			a.log.Warn("cannot save the schedule state", "err", err)
		}
		tr.regular = tr.timing.NextRun(tr.sched, a.id.client, now, now)
	}
	j := &job{id: newJobID(), kind: tr.kind, repo: name, scheduled: true, spec: p.repo, pol: a.policy, trig: tr}
	if busy := a.jobs[name]; busy != nil {
		a.skip(j, busy)
		return
	}
	a.startJob(ctx, j)
}

// retryAfter plans a retry of a failed scheduled job, if its attempts
// are not used up and the retry comes before the next regular run.
func (a *Agent) retryAfter(j *job) {
	p := a.plans[j.repo]
	if p == nil || !j.scheduled {
		return
	}
	tr := j.trig
	if tr != p.backup && tr != p.check {
		return // the policy changed meanwhile
	}
	if j.state != api.StateFailed {
		tr.failures = 0
		return
	}
	tr.failures++
	if at, ok := tr.timing.RetryAt(j.end, tr.failures); ok && at.Before(tr.regular) {
		tr.retryAt = at
		a.log.Info("retry planned", "repository", j.repo, "kind", j.kind, "attempt", tr.failures, "at", at.Format(time.RFC3339))
	}
}
