package fleet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/coffer-backup/coffer/internal/alert"
	"github.com/coffer-backup/coffer/internal/fleet/api"
	"github.com/coffer-backup/coffer/internal/serverdb"
	"github.com/coffer-backup/coffer/internal/storage"
	"github.com/coffer-backup/coffer/internal/wire"
)

// Register adds the fleet administration endpoints (users, groups,
// policies, escrow, whoami, alerts) to mux. Every handler resolves the caller
// (CallerFrom, set by the server's authentication) and passes Authorize
// before it reads or changes anything.
func (f *Fleet) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET "+api.WhoAmIPath, f.handle("", f.whoami))
	mux.HandleFunc("GET "+api.UsersPath, f.handle(ActionUsers, f.listUsers))
	mux.HandleFunc("POST "+api.UsersPath, f.handle(ActionUsers, f.addUser))
	mux.HandleFunc("DELETE "+api.UsersPath+"/{name}", f.handle(ActionUsers, f.removeUser))
	mux.HandleFunc("GET "+api.GroupsPath, f.handle(ActionGroups, f.listGroups))
	mux.HandleFunc("POST "+api.GroupsPath, f.handle(ActionGroups, f.addGroup))
	mux.HandleFunc("POST "+api.GroupsPath+"/{name}/members", f.handle(ActionGroups, f.assignGroup))
	mux.HandleFunc("GET "+api.PoliciesPath, f.handle(ActionPolicyRead, f.listPolicies))
	mux.HandleFunc("GET "+api.PoliciesPath+"/{kind}/{name}", f.handleTarget(ActionPolicyRead, f.showPolicy))
	mux.HandleFunc("PUT "+api.PoliciesPath+"/{kind}/{name}", f.handleTarget(ActionPolicyWrite, f.setPolicy))
	mux.HandleFunc("PUT "+api.EscrowPath, f.handle(ActionEscrow, f.setEscrow))
	mux.HandleFunc("GET "+api.AuditPath, func(w http.ResponseWriter, r *http.Request) {
		f.serve(w, r, ActionAudit, auditTarget, f.listAudit)
	})
	f.registerAlerts(mux)
}

// handler is one endpoint: it returns the value to answer with as JSON.
type handler func(ctx context.Context, p Principal, r *http.Request) (any, error)

// handle authorizes action on the fleet as a whole (the empty action:
// any authenticated principal) and runs h.
func (f *Fleet) handle(action Action, h handler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		f.serve(w, r, action, func(*http.Request) (string, error) { return "", nil }, h)
	}
}

// handleTarget authorizes action on the target named by the path's
// {kind}/{name} and runs h.
func (f *Fleet) handleTarget(action Action, h handler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		f.serve(w, r, action, func(r *http.Request) (string, error) {
			t := r.PathValue("kind") + ":" + r.PathValue("name")
			_, _, err := targetName(t)
			return t, err
		}, h)
	}
}

func (f *Fleet) serve(w http.ResponseWriter, r *http.Request, action Action, target func(*http.Request) (string, error), h handler) {
	ctx := r.Context()
	p, err := f.CallerPrincipal(ctx)
	if err == nil {
		var t string
		if t, err = target(r); err == nil && action != "" {
			err = f.Authorize(ctx, p, action, t)
		}
	}
	var out any
	if err == nil {
		out, err = h(ctx, p, r)
	}
	if err != nil {
		f.fail(w, r, err)
		return
	}
	b, err := json.Marshal(out)
	if err != nil {
		f.fail(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(append(b, '\n')) // #nosec G705 -- JSON (Content-Type set above)
}

// CallerPrincipal resolves the request's caller (CallerFrom) to its
// Principal; a request without one is refused.
func (f *Fleet) CallerPrincipal(ctx context.Context) (Principal, error) {
	c, ok := CallerFrom(ctx)
	if !ok {
		return Principal{}, fmt.Errorf("%w: no authenticated caller", ErrUnknownPrincipal)
	}
	return f.Principal(ctx, c.Kind, c.Name, c.Serial)
}

// codedError answers with its sentinel's status and its own message.
type codedError struct{ sentinel, err error }

func (c codedError) Error() string   { return c.err.Error() }
func (c codedError) Unwrap() []error { return []error{c.sentinel, c.err} }

// HTTPError maps a fleet error to the protocol's: 403 for a refusal, 400
// for a bad request or setting, 404, 409; anything else is internal.
func HTTPError(err error) error {
	var mbe *http.MaxBytesError
	switch {
	case errors.Is(err, ErrForbidden), errors.Is(err, ErrUnknownPrincipal):
		return codedError{storage.ErrForbidden, err}
	case errors.Is(err, api.ErrInvalid), errors.Is(err, ErrInvalidSetting), errors.Is(err, serverdb.ErrInvalidRecord),
		errors.Is(err, alert.ErrInvalid), errors.Is(err, alert.ErrInsecure):
		return codedError{wire.ErrBadRequest, err}
	case errors.Is(err, serverdb.ErrNotFound), errors.Is(err, ErrNoPolicy), errors.Is(err, alert.ErrNoChannel), errors.Is(err, ErrNoAuditLog):
		return codedError{storage.ErrNotFound, err}
	case errors.Is(err, serverdb.ErrExists):
		return codedError{storage.ErrExists, err}
	case errors.As(err, &mbe):
		return codedError{wire.ErrTooLarge, err}
	case errors.Is(err, ErrNotAuditWriter):
		return codedError{wire.ErrUnavailable, err}
	case serverdb.Unavailable(err):
		return codedError{wire.ErrUnavailable, serverdb.ErrUnavailable}
	}
	return err
}

func (f *Fleet) fail(w http.ResponseWriter, r *http.Request, err error) {
	err = HTTPError(err)
	if status, _ := wire.Classify(err); status >= 500 {
		f.log.Error("fleet request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	wire.WriteError(w, err)
}

func readBody(r *http.Request) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r.Body, api.MaxAdminRequest+1))
	if err != nil {
		return nil, err
	}
	if len(b) > api.MaxAdminRequest {
		return nil, fmt.Errorf("%w: body over %d bytes", wire.ErrTooLarge, api.MaxAdminRequest)
	}
	return b, nil
}

func (f *Fleet) whoami(_ context.Context, p Principal, r *http.Request) (any, error) {
	scope := p.Scope
	if scope == nil {
		scope = []string{}
	}
	w := api.WhoAmI{Kind: p.Kind, Name: p.Name, Role: string(p.Role), Scope: scope}
	if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
		w.CertExpires = r.TLS.PeerCertificates[0].NotAfter.UTC().Format(time.RFC3339)
	}
	return w, nil
}

func (f *Fleet) listUsers(ctx context.Context, _ Principal, _ *http.Request) (any, error) {
	return f.Users(ctx)
}

func (f *Fleet) addUser(ctx context.Context, p Principal, r *http.Request) (any, error) {
	b, err := readBody(r)
	if err != nil {
		return nil, err
	}
	req, err := api.DecodeUserAdd(b)
	if err != nil {
		return nil, err
	}
	return f.AddUser(ctx, p, *req)
}

func (f *Fleet) removeUser(ctx context.Context, p Principal, r *http.Request) (any, error) {
	name := r.PathValue("name")
	if !api.ValidName(name) {
		return nil, fmt.Errorf("%w: user name %q", api.ErrInvalid, name)
	}
	if name == p.Name && p.Kind == "user" {
		return nil, fmt.Errorf("%w: a user cannot remove itself (another admin can)", api.ErrInvalid)
	}
	return struct{}{}, f.RemoveUser(ctx, p, name)
}

func (f *Fleet) listGroups(ctx context.Context, _ Principal, _ *http.Request) (any, error) {
	return f.Groups(ctx)
}

func (f *Fleet) addGroup(ctx context.Context, p Principal, r *http.Request) (any, error) {
	b, err := readBody(r)
	if err != nil {
		return nil, err
	}
	req, err := api.DecodeGroupAdd(b)
	if err != nil {
		return nil, err
	}
	return api.Group{Name: req.Name, Members: []string{}}, f.AddGroup(ctx, p, req.Name)
}

func (f *Fleet) assignGroup(ctx context.Context, p Principal, r *http.Request) (any, error) {
	group := r.PathValue("name")
	if !api.ValidName(group) {
		return nil, fmt.Errorf("%w: group name %q", api.ErrInvalid, group)
	}
	b, err := readBody(r)
	if err != nil {
		return nil, err
	}
	req, err := api.DecodeGroupAssign(b)
	if err != nil {
		return nil, err
	}
	return struct{}{}, f.AssignGroup(ctx, p, group, req.Clients)
}

func (f *Fleet) listPolicies(ctx context.Context, _ Principal, _ *http.Request) (any, error) {
	recs, err := f.store.PolicyRecords(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]api.PolicyEntry, 0, len(recs))
	for _, rec := range recs {
		e := api.PolicyEntry{Target: rec.Target, Updated: rec.Updated.UTC().Format(timeFormat)}
		if err := json.Unmarshal([]byte(rec.Settings), &e.Settings); err != nil {
			return nil, fmt.Errorf("stored policy settings of %s: %w", rec.Target, err)
		}
		out = append(out, e)
	}
	return out, nil
}

const timeFormat = "2006-01-02T15:04:05.999999999Z07:00"

// PolicyEntry returns what policy show prints for target: its settings
// and, for a client, its group and its signed policy in force.
func (f *Fleet) PolicyEntry(ctx context.Context, target string) (api.PolicyEntry, error) {
	kind, name, err := targetName(target)
	if err != nil {
		return api.PolicyEntry{}, err
	}
	s, updated, err := f.settings(ctx, target)
	if err != nil {
		return api.PolicyEntry{}, err
	}
	e := api.PolicyEntry{Target: target, Settings: s}
	if !updated.IsZero() {
		e.Updated = updated.UTC().Format(timeFormat)
	}
	if kind == "group" {
		return e, nil
	}
	if e.Group, err = f.store.GroupOf(ctx, name); err != nil {
		return api.PolicyEntry{}, err
	}
	p, err := f.Policy(ctx, name)
	if errors.Is(err, ErrNoPolicy) {
		return e, nil
	}
	if err != nil {
		return api.PolicyEntry{}, err
	}
	signed, _, err := f.SignedPolicy(ctx, name)
	if err != nil {
		return api.PolicyEntry{}, err
	}
	e.Effective, e.Signed = p, string(signed)
	return e, nil
}

func (f *Fleet) showPolicy(ctx context.Context, _ Principal, r *http.Request) (any, error) {
	return f.PolicyEntry(ctx, r.PathValue("kind")+":"+r.PathValue("name"))
}

func (f *Fleet) setPolicy(ctx context.Context, p Principal, r *http.Request) (any, error) {
	b, err := readBody(r)
	if err != nil {
		return nil, err
	}
	req, err := api.DecodePolicySet(b)
	if err != nil {
		return nil, err
	}
	target := r.PathValue("kind") + ":" + r.PathValue("name")
	if _, err := f.SetPolicy(ctx, p, target, req.PolicySettings, req.Unset); err != nil {
		return nil, err
	}
	return f.PolicyEntry(ctx, target)
}

func (f *Fleet) setEscrow(ctx context.Context, p Principal, r *http.Request) (any, error) {
	b, err := readBody(r)
	if err != nil {
		return nil, err
	}
	req, err := api.DecodeEscrowSet(b)
	if err != nil {
		return nil, err
	}
	return struct{}{}, f.SetEscrow(ctx, p, req.PublicKey)
}
