package agent

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/coffer-backup/coffer/internal/fleet/api"
	"github.com/coffer-backup/coffer/internal/fleet/policy"
)

// Why a job's context ended, besides its own errors.
var (
	errStopping  = errors.New("the agent is stopping")
	errCancelled = errors.New("cancelled by the server")
	errTimeout   = errors.New("timed out")
)

// job is one run of one job: scheduled by the agent or ordered by the
// server. Fields are set before it starts; state and end by its goroutine
// before it is handed back on Agent.done.
type job struct {
	id        string
	kind      api.JobKind
	repo      string
	scheduled bool
	spec      policy.Repository
	pol       *policy.Policy
	order     *api.Job // ordered jobs only
	trig      *trigger // scheduled jobs only

	cancel func(cause error)
	start  time.Time
	end    time.Time
	state  api.JobState
}

func (j *job) newReport(state api.JobState) *api.Report {
	return &api.Report{Job: j.id, Kind: j.kind, Repository: j.repo, State: state, Scheduled: j.scheduled, Start: j.start}
}

// skip reports j as skipped: busy is still running on its repository.
func (a *Agent) skip(j *job, busy *job) {
	now := time.Now().UTC()
	j.start = now
	r := j.newReport(api.StateSkipped)
	r.End = now
	r.Error = fmt.Sprintf("%s job %s is still running on repository %s", busy.kind, busy.id, busy.repo)
	a.log.Warn("job skipped", "job", j.id, "kind", j.kind, "repository", j.repo, "busy", busy.id)
	a.report(r)
}

// onJob starts a job the server ordered, or reports why it cannot run.
func (a *Agent) onJob(ctx context.Context, o *api.Job) {
	j := &job{id: o.ID, kind: o.Kind, repo: o.Repository, order: o}
	p := a.plans[o.Repository]
	if a.policy == nil || p == nil {
		now := time.Now().UTC()
		j.start = now
		r := j.newReport(api.StateFailed)
		r.End = now
		r.Error = fmt.Sprintf("no repository %q in this host's policy", o.Repository)
		a.log.Warn("ordered job refused", "job", o.ID, "err", r.Error)
		a.report(r)
		return
	}
	j.spec, j.pol = p.repo, a.policy
	if busy := a.jobs[o.Repository]; busy != nil {
		a.skip(j, busy)
		return
	}
	a.startJob(ctx, j)
}

// onCancel cancels a running job by ID.
func (a *Agent) onCancel(id string) {
	for _, j := range a.jobs {
		if j.id == id {
			a.log.Info("cancelling job", "job", id)
			j.cancel(errCancelled)
			return
		}
	}
	a.log.Info("cancel for a job not running here", "job", id)
}

// startJob runs j in its own goroutine under the repository's timeout,
// reporting it running and then its end.
func (a *Agent) startJob(_ context.Context, j *job) {
	jctx, cancel := context.WithCancelCause(context.Background())
	j.cancel = cancel
	stopTimer := func() bool { return false }
	if d := j.spec.Timeout.D(); d > 0 {
		t := time.AfterFunc(d, func() { cancel(fmt.Errorf("%w after %s", errTimeout, d)) })
		stopTimer = t.Stop
	}
	j.start = time.Now().UTC()
	a.jobs[j.repo] = j
	a.jobsWG.Add(1)
	a.log.Info("job started", "job", j.id, "kind", j.kind, "repository", j.repo, "scheduled", j.scheduled)
	a.report(j.newReport(api.StateRunning))
	go func() {
		defer a.jobsWG.Done()
		r := a.execute(jctx, j)
		stopTimer()
		cancel(nil)
		j.state, j.end = r.State, r.End
		a.log.Info("job ended", "job", j.id, "kind", j.kind, "repository", j.repo, "state", r.State, "error", r.Error)
		// The repository is free before the end is reported: an order
		// sent on that report (run-now after a --wait) must not find
		// the job still holding it.
		select {
		case a.done <- j:
		case <-a.quit:
		}
		a.report(r)
	}()
}

// finished takes a job's end: frees its repository, plans a retry.
func (a *Agent) finished(j *job) {
	if a.jobs[j.repo] == j {
		delete(a.jobs, j.repo)
	}
	a.retryAfter(j)
}

// execute runs j and returns its final report.
func (a *Agent) execute(ctx context.Context, j *job) *api.Report {
	r := j.newReport(api.StateSucceeded)
	var err error
	switch j.kind {
	case api.KindBackup:
		err = a.runBackup(ctx, j, r)
	case api.KindCheck:
		err = a.runCheck(ctx, j)
	case api.KindRestore:
		err = a.runRestore(ctx, j, r)
	case api.KindPrune:
		err = a.runPrune(ctx, j)
	default:
		err = fmt.Errorf("job kind %q is not run by agents", j.kind)
	}
	r.End = time.Now().UTC()
	if err != nil {
		r.State = api.StateFailed
		if cause := context.Cause(ctx); errors.Is(cause, errCancelled) || errors.Is(cause, errStopping) {
			r.State, err = api.StateCancelled, cause
		} else if errors.Is(cause, errTimeout) {
			err = cause
		}
		r.Error = clip(err.Error())
	}
	return r
}

// clip makes s fit a report's error text: valid UTF-8, no NUL, at most
// 4000 bytes.
func clip(s string) string {
	s = strings.ToValidUTF8(strings.ReplaceAll(s, "\x00", ""), "\uFFFD")
	const limit = 4000
	if len(s) <= limit {
		return s
	}
	s = s[:limit]
	for !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s + "…"
}
