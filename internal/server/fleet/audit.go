package fleet

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/coffer-backup/coffer/internal/auditlog"
	"github.com/coffer-backup/coffer/internal/fleet/api"
)

// AuditReader calls fn for each entry of the server's audit log at or
// after since, oldest first (audit.Scan over the state directory), once
// the log holds every event committed before the call. A server that does
// not write the log (another sharing its database does) fails with
// ErrNotAuditWriter rather than answer from a copy that may be behind.
type AuditReader func(ctx context.Context, since time.Time, fn func(auditlog.Entry) error) error

// auditTarget is the target an audit listing is authorized on: client:C
// for ?client=C, else the fleet as a whole.
func auditTarget(r *http.Request) (string, error) {
	c := r.URL.Query().Get("client")
	if c == "" {
		return "", nil
	}
	if !api.ValidName(c) {
		return "", fmt.Errorf("%w: client name %q", api.ErrInvalid, c)
	}
	return "client:" + c, nil
}

// listAudit answers api.AuditPath: the newest entries (at most limit)
// from since on that the caller may see, oldest first. An admin and an
// auditor without a scope see every entry; an auditor with a scope sees
// the entries whose target is a client or group in it. Operators and hosts
// are refused by Authorize before this runs.
func (f *Fleet) listAudit(ctx context.Context, p Principal, r *http.Request) (any, error) {
	if f.auditLog == nil {
		return nil, fmt.Errorf("%w: this server keeps no audit log", ErrNoAuditLog)
	}
	since, limit, err := auditQuery(r)
	if err != nil {
		return nil, err
	}
	target, _ := auditTarget(r) // checked by serve
	sees := f.auditVisibility(ctx, p)
	out := make([]api.AuditEntry, 0, 64)
	err = f.auditLog(ctx, since, func(e auditlog.Entry) error {
		if target != "" && e.Target != target {
			return nil
		}
		if ok, err := sees(e.Target); err != nil || !ok {
			return err
		}
		if len(out) == limit {
			out = slices.Delete(out, 0, 1)
		}
		out = append(out, auditEntry(e))
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// ErrNoAuditLog: the server was started without its audit log (404).
var ErrNoAuditLog = errors.New("no audit log")

// ErrNotAuditWriter: several servers share the database and another one
// writes the audit log, so this one's copy may be behind (503).
var ErrNotAuditWriter = errors.New("this server does not write the audit log: another server sharing its database does; run fleet audit against that server")

// auditQuery reads ?since= (RFC 3339) and ?limit=.
func auditQuery(r *http.Request) (time.Time, int, error) {
	q := r.URL.Query()
	var since time.Time
	if s := q.Get("since"); s != "" {
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return since, 0, fmt.Errorf("%w: since %q: want an RFC 3339 time", api.ErrInvalid, s)
		}
		since = t
	}
	limit := api.DefaultAuditLimit
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > api.MaxAuditLimit {
			return since, 0, fmt.Errorf("%w: limit %q: 1 to %d", api.ErrInvalid, l, api.MaxAuditLimit)
		}
		limit = n
	}
	return since, limit, nil
}

// auditVisibility returns whether p sees an entry on target: everything
// for an admin or an auditor without a scope, else a client or group
// target in its scope (a client's group looked up once per listing).
func (f *Fleet) auditVisibility(ctx context.Context, p Principal) func(target string) (bool, error) {
	if p.Role == RoleAdmin || p.Role == RoleAuditor && len(p.Scope) == 0 {
		return func(string) (bool, error) { return true, nil }
	}
	seen := map[string]bool{}
	return func(target string) (bool, error) {
		kind, _, _ := strings.Cut(target, ":")
		if kind != "client" && kind != "group" {
			return false, nil
		}
		if ok, known := seen[target]; known {
			return ok, nil
		}
		ok, err := inScope(ctx, p, target, f.store.GroupOf)
		if err != nil {
			return false, err
		}
		seen[target] = ok
		return ok, nil
	}
}

func auditEntry(e auditlog.Entry) api.AuditEntry {
	d := e.Details
	if d == nil {
		d = map[string]string{}
	}
	return api.AuditEntry{Seq: e.Seq, Time: e.Time, Actor: api.AuditActor{Name: e.Actor.Name, Role: e.Actor.Role},
		Action: e.Action, Target: e.Target, Outcome: e.Outcome, Details: d, Prev: e.Prev.String(), Hash: e.Hash.String()}
}
