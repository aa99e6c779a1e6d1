package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"time"

	"github.com/coffer-backup/coffer/internal/fleet/api"
	"github.com/coffer-backup/coffer/internal/serverdb"
	"github.com/coffer-backup/coffer/internal/storage"
	"github.com/coffer-backup/coffer/internal/wire"
)

// ServeReport serves POST api.ReportPath for client, an authenticated
// host: it decodes the report (api.DecodeReport), checks that the job is
// the host's own, stores the state change and answers 204 once it is
// committed. A report identical to what is stored is answered 204 and
// changes nothing, so the agent may retry from its queue. File names are
// kept only when the host's policy allows them (report_file_names); else
// they are dropped and the rest of the report kept.
func (c *Control) ServeReport(w http.ResponseWriter, r *http.Request, client string) {
	if r.Method != http.MethodPost {
		writeError(w, fmt.Errorf("%w: %s takes POST", errMethod, api.ReportPath))
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, api.MaxMessage+1))
	if err != nil {
		writeError(w, fmt.Errorf("%w: read report: %v", wire.ErrBadRequest, err))
		return
	}
	rep, err := api.DecodeReport(body)
	if err != nil {
		writeError(w, fmt.Errorf("%w: %v", wire.ErrBadRequest, err))
		return
	}
	if len(rep.Files) > 0 {
		cp, ok, err := c.policyOf(r.Context(), client)
		if err != nil || !ok || !cp.policy.ReportFileNames {
			rep.Files = nil
		}
	}
	if err := c.Report(r.Context(), client, rep); err != nil {
		writeError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// Report stores one report of client's agent (see ServeReport). Errors
// wrap ErrForbidden (another host's job), serverdb.ErrNotFound (an ordered
// job the server does not know) or serverdb.ErrConflict (a report that
// contradicts the job: another kind, or another final state).
func (c *Control) Report(ctx context.Context, client string, rep *api.Report) error {
	now := c.now()
	var stored *serverdb.Job
	err := c.reports.update(ctx, c.cfg.Store.UpdateJobs, serverdb.JobUpdate{ID: rep.Job, Change: func(cur serverdb.Job, found bool) (*serverdb.Job, error) {
		next, err := applyReport(cur, found, client, rep, now)
		stored = next
		return next, err
	}})
	if err != nil {
		return err
	}
	if stored == nil {
		return nil // a replay or a stale report: nothing changed
	}
	if rep.Dropped > 0 {
		if err := c.cfg.Store.AddDropped(ctx, client, rep.Dropped); err != nil {
			c.log.Warn("record dropped reports", "client", client, "err", err)
		}
		c.log.Warn("an agent's full report queue dropped reports", "client", client, "dropped", rep.Dropped)
	}
	if api.JobState(stored.State).Final() && c.cfg.Notify != nil {
		c.cfg.Notify(Event{Time: now, Client: client, Job: *stored, Detail: fmt.Sprintf("%s job %s %s", stored.Kind, stored.ID, stored.State)})
	}
	return nil
}

// kindPolicy is the kind of a report that says the agent refused a
// policy: failed, with the reason, and no repository.
const kindPolicy api.JobKind = "policy"

// applyReport is the jobs' state machine for a report of client's agent:
// it returns the job to store, nil when nothing changes, or why the report
// is refused. cur is the stored job (found false: none).
func applyReport(cur serverdb.Job, found bool, client string, rep *api.Report, now time.Time) (*serverdb.Job, error) {
	if !found {
		// The agent makes the IDs of scheduled jobs and of its reports of
		// a refused policy (kind "policy"); the server makes the others.
		if !rep.Scheduled && rep.Kind != kindPolicy {
			return nil, fmt.Errorf("%w: job %s: the server ordered no such job", errNotFound, rep.Job)
		}
		j := serverdb.Job{ID: rep.Job, Client: client, Kind: string(rep.Kind), Repository: rep.Repository, Scheduled: rep.Scheduled, Created: now}
		return withReport(j, rep, now)
	}
	if cur.Client != client {
		// The same answer whoever owns it: a host learns nothing of others.
		return nil, fmt.Errorf("%w: job %s is not this host's", ErrForbidden, rep.Job)
	}
	if cur.Scheduled != rep.Scheduled || cur.Kind != string(rep.Kind) || cur.Repository != rep.Repository {
		return nil, fmt.Errorf("%w: report of job %s (%s, %s) does not match the job (%s, %s)",
			errConflict, rep.Job, rep.Kind, rep.Repository, cur.Kind, cur.Repository)
	}
	next, err := withReport(cur, rep, now)
	if err != nil {
		return nil, err
	}
	if sameOutcome(cur, *next) && !cur.ServerSet {
		return nil, nil // a replay
	}
	curState, newState := api.JobState(cur.State), rep.State
	switch {
	case cur.ServerSet:
		// The agent knows better than the server's guess (restart, missed,
		// cancelled before it started).
	case curState.Final() && !newState.Final():
		return nil, nil // a late report of an earlier state
	case curState.Final():
		return nil, fmt.Errorf("%w: job %s ended %s already; a report says %s", errConflict, rep.Job, cur.State, newState)
	case curState == api.StateRunning && newState == api.StateQueued:
		return nil, nil
	}
	return next, nil
}

// withReport returns j with rep's state and results.
func withReport(j serverdb.Job, rep *api.Report, now time.Time) (*serverdb.Job, error) {
	stats, err := json.Marshal(rep.Stats)
	if err != nil {
		return nil, err
	}
	var files []byte
	if len(rep.Files) > 0 {
		if files, err = json.Marshal(rep.Files); err != nil {
			return nil, err
		}
	}
	j.State, j.Start, j.End = string(rep.State), rep.Start.UTC(), rep.End.UTC()
	if rep.Start.IsZero() {
		j.Start = time.Time{}
	}
	if rep.End.IsZero() {
		j.End = time.Time{}
	}
	j.Stats, j.Snapshot, j.Error, j.Files = stats, rep.Snapshot, rep.Error, files
	j.Updated, j.ServerSet = now, false
	return &j, nil
}

// sameOutcome reports whether a and b hold the same state and results.
func sameOutcome(a, b serverdb.Job) bool {
	return a.State == b.State && a.Start.Equal(b.Start) && a.End.Equal(b.End) && string(a.Stats) == string(b.Stats) &&
		a.Snapshot == b.Snapshot && a.Error == b.Error && string(a.Files) == string(b.Files)
}

// Errors mapped to statuses by writeError; they wrap the storage and wire
// sentinels wire.WriteError classifies.
var (
	errNotFound = fmt.Errorf("%w", storage.ErrNotFound)
	errConflict = fmt.Errorf("%w", storage.ErrExists)
)

// writeError answers with err's status: 403 for ErrForbidden, 404 for an
// unknown job or host, 409 for a conflict, 400 for bad input and
// ErrRefused, 405 for a method, 500 otherwise (wire.WriteError's body).
// The message is err's own: the sentinel that picks the status adds no
// words to it, so a refusal reads as Authorize wrote it.
func writeError(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, ErrForbidden):
		err = coded{storage.ErrForbidden, err}
	case errors.Is(err, serverdb.ErrNotFound):
		err = coded{storage.ErrNotFound, err}
	case errors.Is(err, serverdb.ErrConflict):
		err = coded{storage.ErrExists, err}
	case errors.Is(err, api.ErrInvalid), errors.Is(err, ErrRefused):
		err = coded{wire.ErrBadRequest, err}
	case errors.Is(err, errMethod):
		err = coded{wire.ErrMethod, err}
	case serverdb.Unavailable(err):
		err = coded{wire.ErrUnavailable, serverdb.ErrUnavailable}
	}
	wire.WriteError(w, err)
}

// coded is err answered with sentinel's status and err's own message.
type coded struct{ sentinel, err error }

func (c coded) Error() string   { return c.err.Error() }
func (c coded) Unwrap() []error { return []error{c.sentinel, c.err} }

// Forbidden marks err, a refusal for lack of rights, as ErrForbidden
// without changing its message (which names the role and the scope that
// fell short).
func Forbidden(err error) error { return coded{ErrForbidden, err} }

// finalStates are the states after which nothing follows.
var finalStates = []string{string(api.StateSucceeded), string(api.StateWarning), string(api.StateFailed),
	string(api.StateSkipped), string(api.StateMissed), string(api.StateCancelled)}

// isFinal reports whether a stored state is final.
func isFinal(state string) bool { return slices.Contains(finalStates, state) }
