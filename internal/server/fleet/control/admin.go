package control

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/coffer-backup/coffer/internal/auditlog"
	"github.com/coffer-backup/coffer/internal/fleet/api"
	"github.com/coffer-backup/coffer/internal/serverdb"
	"github.com/coffer-backup/coffer/internal/wire"
)

// Action is what an administration request does, as authorization sees it.
type Action string

// The actions of the jobs and status endpoints.
const (
	ActStatus  Action = "status"
	ActJobs    Action = "jobs"
	ActRunNow  Action = "run-now"
	ActCancel  Action = "cancel"
	ActRestore Action = "restore"
)

// Access is what the person behind an administration request may do; the
// server builds it from the request's principal (the fleet's roles and
// scopes).
type Access interface {
	// Authorize returns nil when the caller may do action on host client,
	// or, for client "", on any part of the fleet (a listing, then
	// filtered by Sees); otherwise an error wrapping ErrForbidden that
	// names the role and scope that fell short. It audits refusals.
	Authorize(ctx context.Context, action Action, client string) error
	// Sees reports whether a listing for action shows host client.
	Sees(action Action, client string) bool
	// Name names the caller for the record of what it ordered
	// ("user:alice").
	Name() string
	// Actor is the caller as the audit log names it: name and role.
	Actor() auditlog.Actor
}

// ServeAdmin serves the jobs and status endpoints of the administration
// API (api.StatusPath, api.JobsPath and below, api.RunNowPath,
// api.RestorePath) for the caller a describes; every call passes
// a.Authorize first.
func (c *Control) ServeAdmin(w http.ResponseWriter, r *http.Request, a Access) {
	p := r.URL.Path
	switch {
	case p == api.StatusPath && r.Method == http.MethodGet:
		c.serveStatus(w, r, a)
	case p == api.JobsPath && r.Method == http.MethodGet:
		c.serveJobs(w, r, a)
	case strings.HasPrefix(p, api.JobsPath+"/"):
		c.serveJob(w, r, a, strings.TrimPrefix(p, api.JobsPath+"/"))
	case p == api.RunNowPath && r.Method == http.MethodPost:
		c.serveRunNow(w, r, a)
	case p == api.RestorePath && r.Method == http.MethodPost:
		c.serveRestore(w, r, a)
	case p == api.StatusPath || p == api.JobsPath || p == api.RunNowPath || p == api.RestorePath:
		writeError(w, fmt.Errorf("%w: %s %s", errMethod, r.Method, p))
	default:
		writeError(w, fmt.Errorf("%w: %s", wire.ErrNoRoute, p))
	}
}

func (c *Control) serveStatus(w http.ResponseWriter, r *http.Request, a Access) {
	if err := a.Authorize(r.Context(), ActStatus, ""); err != nil {
		writeError(w, err)
		return
	}
	st, err := c.Status(r.Context(), func(client string) bool { return a.Sees(ActStatus, client) })
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, st)
}

// maxListed bounds a jobs listing.
const maxListed = 10000

func (c *Control) serveJobs(w http.ResponseWriter, r *http.Request, a Access) {
	q := r.URL.Query()
	f := serverdb.JobFilter{Client: q.Get("client"), Limit: 1000}
	if s := q.Get("state"); s != "" {
		if !validState(s) {
			writeError(w, fmt.Errorf("%w: %w %q", wire.ErrBadRequest, errUnknownState, s))
			return
		}
		f.States = []string{s}
	}
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > maxListed {
			writeError(w, fmt.Errorf("%w: limit %q: 1 to %d", wire.ErrBadRequest, l, maxListed))
			return
		}
		f.Limit = n
	}
	if err := a.Authorize(r.Context(), ActJobs, f.Client); err != nil {
		writeError(w, err)
		return
	}
	jobs, err := c.cfg.Store.Jobs(r.Context(), f)
	if err != nil {
		writeError(w, err)
		return
	}
	out := []api.JobInfo{}
	for _, j := range jobs {
		if a.Sees(ActJobs, j.Client) {
			out = append(out, JobInfo(j))
		}
	}
	writeJSON(w, http.StatusOK, out)
}

func validState(s string) bool {
	return s == string(api.StateQueued) || s == string(api.StateRunning) || isFinal(s)
}

// serveJob serves GET JobsPath/ID and POST JobsPath/ID/cancel.
func (c *Control) serveJob(w http.ResponseWriter, r *http.Request, a Access, rest string) {
	id, cancel := strings.CutSuffix(rest, api.CancelSuffix)
	if !api.ValidID(id) {
		writeError(w, fmt.Errorf("%w: job ID %q", wire.ErrBadRequest, id))
		return
	}
	if cancel && r.Method != http.MethodPost || !cancel && r.Method != http.MethodGet {
		writeError(w, fmt.Errorf("%w: %s %s", errMethod, r.Method, r.URL.Path))
		return
	}
	j, err := c.cfg.Store.Job(r.Context(), id)
	if err != nil {
		writeError(w, err)
		return
	}
	action := ActJobs
	if cancel {
		action = ActCancel
	}
	if err := a.Authorize(r.Context(), action, j.Client); err != nil {
		writeError(w, err)
		return
	}
	if cancel {
		if j, err = c.Cancel(r.Context(), id, a.Name(), a.Actor()); err != nil {
			writeError(w, err)
			return
		}
	}
	writeJSON(w, http.StatusOK, JobInfo(j))
}

func (c *Control) serveRunNow(w http.ResponseWriter, r *http.Request, a Access) {
	body, ok := readBody(w, r)
	if !ok {
		return
	}
	req, err := api.DecodeRunNow(body)
	if err != nil {
		writeError(w, err)
		return
	}
	if err := a.Authorize(r.Context(), ActRunNow, req.Client); err != nil {
		writeError(w, err)
		return
	}
	o := Order{Client: req.Client, Kind: req.Kind, Repository: req.Repository, By: a.Name(), Actor: a.Actor()}
	if req.Kind == api.KindCheck {
		o.Check = &api.Check{ReadDataSubset: req.ReadDataSubset}
	}
	c.order(w, r, o)
}

func (c *Control) serveRestore(w http.ResponseWriter, r *http.Request, a Access) {
	body, ok := readBody(w, r)
	if !ok {
		return
	}
	req, err := api.DecodeRestoreOrder(body)
	if err != nil {
		writeError(w, err)
		return
	}
	if err := a.Authorize(r.Context(), ActRestore, req.Client); err != nil {
		writeError(w, err)
		return
	}
	rs := req.Restore
	c.order(w, r, Order{Client: req.Client, Kind: api.KindRestore, Repository: req.Repository, Restore: &rs, By: a.Name(), Actor: a.Actor()})
}

func (c *Control) order(w http.ResponseWriter, r *http.Request, o Order) {
	j, err := c.Order(r.Context(), o)
	if err != nil {
		writeError(w, err)
		return
	}
	c.log.Info("job ordered", "job", j.ID, "client", j.Client, "kind", j.Kind, "by", o.By)
	writeJSON(w, http.StatusCreated, JobInfo(j))
}

func readBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	body, err := io.ReadAll(io.LimitReader(r.Body, api.MaxMessage+1))
	if err != nil {
		writeError(w, fmt.Errorf("%w: read body: %v", wire.ErrBadRequest, err))
		return nil, false
	}
	return body, true
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		writeError(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}
