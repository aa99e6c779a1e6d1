package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coffer-backup/coffer/internal/auditlog"
	"github.com/coffer-backup/coffer/internal/fleet/api"
	"github.com/coffer-backup/coffer/internal/pki"
)

// fleetAudit runs fleet audit --json as the identity in id and returns the
// entries, each checked against its documented shape.
func fleetAudit(t *testing.T, e *env, srv *cofferServer, id string, args ...string) []api.AuditEntry {
	t.Helper()
	out := mustFleet(e, srv, id, append([]string{"audit", "--json"}, args...)...)
	requireArray(t, "fleet audit", out, func() any { return &api.AuditEntry{} })
	var entries fleetAuditJSON
	if err := json.Unmarshal([]byte(out), &entries); err != nil {
		t.Fatalf("fleet audit --json: %v\n%s", err, out)
	}
	return entries
}

// enrollFleetUser adds a user with the admin identity and enrolls it into
// a new identity directory of e, which it returns.
func enrollFleetUser(t *testing.T, admin, e *env, srv *cofferServer, adminID, name string, args ...string) string {
	t.Helper()
	tok := strings.TrimSpace(mustFleet(admin, srv, adminID, append([]string{"user", "add", name}, args...)...))
	if !strings.HasPrefix(tok, pki.TokenPrefix) {
		t.Fatalf("user add printed %q", tok)
	}
	file := filepath.Join(e.dir, name+".token")
	writeFile(t, file, []byte(tok+"\n"))
	id := filepath.Join(e.dir, name+"-id")
	e.must("enroll", "--server", srv.addr, "--token-file", file, "--identity", id)
	return id
}

// findEntry returns the last entry for which match holds.
func findEntry(entries []api.AuditEntry, match func(api.AuditEntry) bool) (api.AuditEntry, bool) {
	for i := len(entries) - 1; i >= 0; i-- {
		if match(entries[i]) {
			return entries[i], true
		}
	}
	return api.AuditEntry{}, false
}

// TestFleetAuditEndToEnd reads a real server's audit log through the
// fleet API: an auditor sees the enrolments and a refusal; an operator is
// refused (exit 14, naming role and scope) and its refusal is in the log;
// an auditor with a scope sees only entries on its hosts; the log still
// verifies.
func TestFleetAuditEndToEnd(t *testing.T) {
	t.Parallel()
	admin, host, people := newEnv(t), newEnv(t), newEnv(t)
	dir := serverInit(t, admin, "srv")
	adminID := filepath.Join(dir, "admin")
	srv := startServer(t, dir, "127.0.0.1:0")
	srv.enroll(admin, host, "web1")
	mustFleet(admin, srv, adminID, "group", "add", "g1")
	mustFleet(admin, srv, adminID, "group", "assign", "g1", "web1")
	audID := enrollFleetUser(t, admin, people, srv, adminID, "aud1", "--role", "auditor")
	opID := enrollFleetUser(t, admin, people, srv, adminID, "op1", "--role", "operator", "--scope", "group:g1")
	scopedID := enrollFleetUser(t, admin, people, srv, adminID, "aud2", "--role", "auditor", "--scope", "client:web9")

	// The operator may not read the log, not even of a host in its scope.
	for _, args := range [][]string{{"audit"}, {"audit", "--client", "web1"}} {
		_, se, code := fleetAs(people, srv, opID, args...)
		if code != exitForbidden || !strings.Contains(se, `operator "op1"`) || !strings.Contains(se, "group:g1") || !strings.Contains(se, "audit log") {
			t.Fatalf("operator %v: exit %d, want %d naming role and scope: %s", args, code, exitForbidden, se)
		}
	}
	// A host certificate is refused too.
	if _, se, code := host.run("fleet", "--server", srv.addr, "audit"); code != exitForbidden {
		t.Fatalf("host: exit %d: %s", code, se)
	}

	isRefusal := func(e api.AuditEntry) bool {
		return e.Outcome == "refused" && e.Action == "audit" && e.Actor == api.AuditActor{Name: "op1", Role: "operator"} &&
			strings.Contains(e.Details["detail"], "group:g1")
	}
	var entries []api.AuditEntry
	if !within(10*time.Second, func() bool {
		entries = fleetAudit(t, people, srv, audID)
		_, ok := findEntry(entries, isRefusal)
		return ok
	}) {
		t.Fatalf("the auditor does not see the operator's refusal:\n%+v", entries)
	}
	for _, want := range []string{"web1", "aud1", "op1"} {
		if _, ok := findEntry(entries, func(e api.AuditEntry) bool { return e.Action == "enrol" && strings.HasSuffix(e.Target, ":"+want) }); !ok {
			t.Fatalf("no enrolment of %s in %+v", want, entries)
		}
	}
	if _, ok := findEntry(entries, func(e api.AuditEntry) bool {
		return e.Action == "login" && e.Actor == api.AuditActor{Name: "aud1", Role: "auditor"} && e.Target == "user:aud1"
	}); !ok {
		t.Fatalf("no login of aud1 in %+v", entries)
	}
	for i, e := range entries {
		if e.Seq == 0 || len(e.Hash) != 64 || i > 0 && e.Seq <= entries[i-1].Seq {
			t.Fatalf("entry %d: %+v", i, e)
		}
	}

	// --client keeps that host's entries; --since an hour ahead none.
	for _, e := range fleetAudit(t, people, srv, audID, "--client", "web1") {
		if e.Target != "client:web1" {
			t.Fatalf("--client web1 listed %+v", e)
		}
	}
	if got := fleetAudit(t, people, srv, audID, "--since", time.Now().Add(time.Hour).UTC().Format(time.RFC3339)); len(got) != 0 {
		t.Fatalf("--since an hour ahead: %+v", got)
	}
	if got := fleetAudit(t, people, srv, audID, "--limit", "2"); len(got) != 2 || got[1].Seq < entries[len(entries)-1].Seq {
		t.Fatalf("--limit 2 keeps the newest two: %+v", got)
	}

	// An auditor scoped to client:web9 sees only web9's entries (its token),
	// and is refused web1's.
	srv.token(admin, "web9")
	var scoped []api.AuditEntry
	if !within(10*time.Second, func() bool {
		scoped = fleetAudit(t, people, srv, scopedID)
		return len(scoped) > 0
	}) {
		t.Fatal("the scoped auditor sees nothing of web9")
	}
	for _, e := range scoped {
		if e.Target != "client:web9" {
			t.Fatalf("the scoped auditor sees %+v", e)
		}
	}
	if _, se, code := fleetAs(people, srv, scopedID, "audit", "--client", "web1"); code != exitForbidden || !strings.Contains(se, "outside its scope") {
		t.Fatalf("scoped auditor --client web1: exit %d: %s", code, se)
	}

	// Orders, their grants and cancellations are recorded with who acted.
	mustFleet(admin, srv, adminID, "policy", "set", "--client", "web1", "--paths", "/etc", "--schedule", "@daily", "--keep-last", "3")
	var job fleetJobJSON
	if err := json.Unmarshal([]byte(mustFleet(admin, srv, adminID, "run-now", "web1", "--kind", "prune", "--json")), &job); err != nil {
		t.Fatal(err)
	}
	mustFleet(admin, srv, adminID, "cancel", job.ID)
	got := fleetAudit(t, people, srv, audID, "--client", "web1")
	byAdmin := api.AuditActor{Name: "admin", Role: "admin"}
	for _, action := range []string{"fleet-policy", "run-now", "grant", "cancel"} {
		if _, ok := findEntry(got, func(e api.AuditEntry) bool {
			return e.Action == action && e.Actor == byAdmin && (action == "fleet-policy" || e.Details["job"] == job.ID)
		}); !ok {
			t.Fatalf("no %s entry by the admin for job %s in %+v", action, job.ID, got)
		}
	}

	// Bad input is refused before a request.
	if _, se, code := fleetAs(people, srv, audID, "audit", "--since", "yesterday"); code != exitUsage || !strings.Contains(se, "--since") {
		t.Fatalf("--since yesterday: exit %d: %s", code, se)
	}
	if rep, stderr, code := auditVerify(t, admin, dir); code != 0 || !rep.OK {
		t.Fatalf("verify: exit %d %+v: %s", code, rep, stderr)
	}
}

// audited returns the entries of action in the server's audit log, as
// server audit show --json lists them.
func (s *cofferServer) audited(e *env, action string) []auditlog.Entry {
	s.t.Helper()
	var out []auditlog.Entry
	for _, en := range auditEntries(s.t, e, s.dir) {
		if en.Action == action {
			out = append(out, en)
		}
	}
	return out
}
