package main

import (
	"encoding/json"
	"github.com/coffer-backup/coffer/internal/auditlog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coffer-backup/coffer/internal/fleet/policy"
	"github.com/coffer-backup/coffer/internal/pki"
)

// fleetAs runs a fleet command with the identity in dir against srv.
func fleetAs(e *env, srv *cofferServer, dir string, args ...string) (string, string, int) {
	e.t.Helper()
	return e.run(append([]string{"fleet", "--identity", dir, "--server", srv.addr}, args...)...)
}

func mustFleet(e *env, srv *cofferServer, dir string, args ...string) string {
	e.t.Helper()
	so, se, code := fleetAs(e, srv, dir, args...)
	if code != 0 {
		e.t.Fatalf("coffer fleet %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, so, se)
	}
	return so
}

// TestFleetEndToEnd drives the fleet administration of a real server:
// server init's admin identity, users with roles and scopes enrolling
// with their tokens, refusals (exit 14, audited), groups and policies
// signed as agents verify them.
func TestFleetEndToEnd(t *testing.T) {
	t.Parallel()
	admin := newEnv(t)
	dir := filepath.Join(admin.dir, "server")
	out := admin.must("server", "init", "--dir", dir, "--listen", "127.0.0.1:0")
	adminID := filepath.Join(dir, "admin")
	if !strings.Contains(out, "first administrator's identity") || !strings.Contains(out, adminID) {
		t.Fatalf("server init does not name the admin identity:\n%s", out)
	}
	for name, mode := range map[string]os.FileMode{"client.key": 0o600, "client.crt": 0o644, "ca.crt": 0o644, "server": 0o644, "policy.pub": 0o644} {
		if fi, err := os.Stat(filepath.Join(adminID, name)); err != nil || fi.Mode().Perm() != mode {
			t.Fatalf("admin/%s: %v %v", name, fi, err)
		}
	}
	if fi, err := os.Stat(filepath.Join(dir, policy.KeyFile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("policy.key: %v %v", fi, err)
	}
	crt, err := os.ReadFile(filepath.Join(adminID, "client.crt"))
	if err != nil {
		t.Fatal(err)
	}
	cert, err := pki.ParseCertPEM(crt)
	if err != nil || len(cert.URIs) != 1 || cert.URIs[0].String() != "urn:coffer:user:admin" {
		t.Fatalf("admin certificate SAN: %v %v", cert.URIs, err)
	}
	srv := startServer(t, dir, "127.0.0.1:0")

	// The admin identity's server file names the init's listen port (0
	// here); --server gives the real one.
	var me fleetWhoAmIJSON
	if err := json.Unmarshal([]byte(mustFleet(admin, srv, adminID, "whoami", "--json")), &me); err != nil || me.Role != "admin" || me.Name != "admin" {
		t.Fatalf("whoami: %+v %v", me, err)
	}
	mustFleet(admin, srv, adminID, "group", "add", "g1")
	mustFleet(admin, srv, adminID, "group", "assign", "g1", "web1", "web2")

	// An operator scoped to g1 and an auditor enroll with their tokens.
	operator, auditor := newEnv(t), newEnv(t)
	opID, audID := filepath.Join(operator.dir, "id"), filepath.Join(auditor.dir, "id")
	enrollUser := func(e *env, id, name string, args ...string) {
		tok := strings.TrimSpace(mustFleet(admin, srv, adminID, append([]string{"user", "add", name}, args...)...))
		if !strings.HasPrefix(tok, pki.TokenPrefix) {
			t.Fatalf("user add printed %q", tok)
		}
		file := filepath.Join(e.dir, name+".token")
		writeFile(t, file, []byte(tok+"\n"))
		out := e.must("enroll", "--server", srv.addr, "--token-file", file, "--identity", id)
		if !strings.Contains(out, `user "`+name+`"`) {
			t.Fatalf("enroll: %s", out)
		}
		if addr, err := pki.ReadServerAddr(id); err != nil || addr != srv.addr {
			t.Fatalf("server file: %q %v", addr, err)
		}
		if _, err := policy.LoadPublicKey(id); err != nil {
			t.Fatalf("pinned policy key: %v", err)
		}
	}
	enrollUser(operator, opID, "op1", "--role", "operator", "--scope", "group:g1")
	enrollUser(auditor, audID, "aud1", "--role", "auditor")
	var users []fleetUserJSON
	if err := json.Unmarshal([]byte(mustFleet(admin, srv, adminID, "user", "list", "--json")), &users); err != nil || len(users) != 3 || !users[2].Enrolled || users[2].Name != "op1" {
		t.Fatalf("user list: %+v %v", users, err)
	}

	t.Run("operator refused outside its scope, audited", func(t *testing.T) {
		// The operator's own identity, through the server file enroll wrote.
		so, se, code := operator.run("fleet", "--identity", opID, "policy", "set", "--client", "web9", "--schedule", "@daily")
		if code != exitForbidden || !strings.Contains(se, `operator "op1"`) || !strings.Contains(se, "group:g1") {
			t.Fatalf("exit %d, want %d naming role and scope\nstdout: %s\nstderr: %s", code, exitForbidden, so, se)
		}
		_, se, code = operator.run("fleet", "--identity", opID, "user", "add", "x", "--role", "admin")
		if code != exitForbidden || !strings.Contains(se, "operator role does not allow it") {
			t.Fatalf("user add by an operator: exit %d: %s", code, se)
		}
		evs := srv.audited(admin, "policy-write")
		if len(evs) != 1 || evs[0].Actor != (auditlog.Actor{Name: "op1", Role: "operator"}) || evs[0].Outcome != auditlog.OutcomeRefused ||
			evs[0].Target != "client:web9" || !strings.Contains(evs[0].Details["detail"], "group:g1") {
			t.Fatalf("refusal audited: %+v", evs)
		}
		if evs := srv.audited(admin, "users"); len(evs) != 1 || evs[0].Outcome != auditlog.OutcomeRefused || evs[0].Actor.Name != "op1" {
			t.Fatalf("refusal audited: %+v", evs)
		}
	})

	t.Run("auditor cannot change a policy", func(t *testing.T) {
		_, se, code := auditor.run("fleet", "--identity", audID, "policy", "set", "--group", "g1", "--schedule", "@daily", "--paths", "/etc")
		if code != exitForbidden || !strings.Contains(se, `auditor "aud1"`) {
			t.Fatalf("exit %d: %s", code, se)
		}
	})

	t.Run("a user certificate has no storage namespace", func(t *testing.T) {
		operator.extra = []string{"COFFER_IDENTITY=" + opID}
		for _, args := range [][]string{
			append([]string{"init", "--repo", srv.url("mine")}, cheapKDF...),
			{"snapshots", "--repo", srv.url("mine")},
		} {
			_, se, code := operator.run(args...)
			// A HEAD answer has no body to carry the reason: 403 it is.
			if code == 0 || !strings.Contains(se, "no storage namespace") && !strings.Contains(se, "403 Forbidden") {
				t.Fatalf("%v: exit %d: %s", args, code, se)
			}
		}
		if entries, _ := os.ReadDir(filepath.Join(dir, "objects")); len(entries) != 0 {
			t.Fatalf("a user certificate made storage: %v", entries)
		}
	})

	t.Run("an invalid schedule is refused naming the field", func(t *testing.T) {
		_, se, code := fleetAs(admin, srv, adminID, "policy", "set", "--group", "g1", "--paths", "/etc", "--schedule", "every 5s")
		if code == 0 || !strings.Contains(se, "--schedule") || !strings.Contains(se, "every 5s") {
			t.Fatalf("exit %d: %s", code, se)
		}
		_, se, code = fleetAs(admin, srv, adminID, "policy", "set", "--client", "web1", "--restore-root", "/")
		if code == 0 || !strings.Contains(se, "--restore-root") {
			t.Fatalf("exit %d: %s", code, se)
		}
	})

	t.Run("group and client settings merge field by field into a signed policy", func(t *testing.T) {
		mustFleet(admin, srv, adminID, "policy", "set", "--group", "g1", "--paths", "/etc,/home", "--schedule", "@daily", "--keep-daily", "7", "--retry-interval", "1m", "--retry-attempts", "3")
		mustFleet(admin, srv, adminID, "policy", "set", "--client", "web1", "--schedule", "every 1h", "--keep-daily", "30", "--restore-root", "/srv/restore")
		pub, err := policy.LoadPublicKey(opID) // pinned at enrollment
		if err != nil {
			t.Fatal(err)
		}
		show := func(client string) *policy.Policy {
			var e fleetPolicyJSON
			if err := json.Unmarshal([]byte(mustFleet(admin, srv, adminID, "policy", "show", "--client", client, "--json")), &e); err != nil {
				t.Fatal(err)
			}
			p, err := policy.Verify([]byte(e.Signed), pub, client, 0)
			if err != nil {
				t.Fatalf("verify %s's policy: %v\n%s", client, err, e.Signed)
			}
			return p
		}
		web1, web2 := show("web1"), show("web2")
		r1, r2 := web1.Repositories[0], web2.Repositories[0]
		if r1.Schedule != "every 1h" || r1.Keep.Daily != 30 || web1.RestoreRoot != "/srv/restore" ||
			strings.Join(r1.Paths, ",") != "/etc,/home" || r1.Retry.Attempts != 3 || r1.Retry.Interval.D() != time.Minute {
			t.Fatalf("web1 (client over group): %+v %+v", web1, r1)
		}
		if r2.Schedule != "@daily" || r2.Keep.Daily != 7 || web2.RestoreRoot != "" || strings.Join(r2.Paths, ",") != "/etc,/home" {
			t.Fatalf("web2 (group only): %+v %+v", web2, r2)
		}
		// A change raises the generation; showing again does not.
		gen := web1.Generation
		if again := show("web1"); again.Generation != gen {
			t.Fatalf("generation moved without a change: %d -> %d", gen, again.Generation)
		}
		mustFleet(admin, srv, adminID, "policy", "set", "--group", "g1", "--exclude-caches")
		if after := show("web1"); after.Generation != gen+1 || !after.Repositories[0].ExcludeCaches {
			t.Fatalf("after a group change: generation %d (was %d), %+v", after.Generation, gen, after.Repositories[0])
		}
		// The operator may not read policies (not in its role).
		if _, se, code := fleetAs(operator, srv, opID, "policy", "show", "--client", "web1"); code != exitForbidden {
			t.Fatalf("operator policy show: exit %d: %s", code, se)
		}
	})

	t.Run("unset, location and read-data-subset", func(t *testing.T) {
		pub, err := policy.LoadPublicKey(opID)
		if err != nil {
			t.Fatal(err)
		}
		show := func(client string) *policy.Policy {
			var e fleetPolicyJSON
			if err := json.Unmarshal([]byte(mustFleet(admin, srv, adminID, "policy", "show", "--client", client, "--json")), &e); err != nil {
				t.Fatal(err)
			}
			p, err := policy.Verify([]byte(e.Signed), pub, client, 0)
			if err != nil {
				t.Fatal(err)
			}
			return p
		}
		mustFleet(admin, srv, adminID, "policy", "set", "--client", "web1", "--location", "coffer://backup.example.org:7443/web1-main",
			"--check-schedule", "@weekly", "--read-data-subset", "5%")
		r := show("web1").Repositories[0]
		if r.Location != "coffer://backup.example.org:7443/web1-main" || r.Check == nil || r.Check.ReadDataSubset != "5%" || r.Check.Schedule != "@weekly" || r.Keep.Daily != 30 {
			t.Fatalf("after --location and --read-data-subset: %+v %+v", r, r.Check)
		}
		// Unset: the group's value applies again; the default where the
		// group has none.
		mustFleet(admin, srv, adminID, "policy", "set", "--client", "web1", "--unset", "keep-daily,location,restore-root")
		p := show("web1")
		if r := p.Repositories[0]; r.Keep.Daily != 7 || r.Location != "" || p.RestoreRoot != "" || r.Schedule != "every 1h" {
			t.Fatalf("after --unset: %+v restore root %q", r, p.RestoreRoot)
		}
		for _, c := range []struct {
			args []string
			want string
		}{
			{[]string{"--location", "ftp://x/y"}, "--location"},
			{[]string{"--read-data-subset", "150%"}, "--read-data-subset"},
			{[]string{"--unset", "check-schedule"}, "--check-schedule"}, // the subset would be left without one
			{[]string{"--unset", "keep-forever"}, "keep_forever"},
			{[]string{"--unset", "window", "--window", "Sat-Sun"}, "window"},
		} {
			_, se, code := fleetAs(admin, srv, adminID, append([]string{"policy", "set", "--client", "web1"}, c.args...)...)
			if code == 0 || !strings.Contains(se, c.want) {
				t.Errorf("%v: exit %d, want an error naming %s: %s", c.args, code, c.want, se)
			}
		}
		if r := show("web1").Repositories[0]; r.Check == nil || r.Check.ReadDataSubset != "5%" {
			t.Fatalf("a refused change changed the policy: %+v", r.Check)
		}
	})

	t.Run("removing a user revokes its certificate", func(t *testing.T) {
		mustFleet(admin, srv, adminID, "user", "remove", "aud1")
		ok := within(5*time.Second, func() bool {
			_, _, code := auditor.run("fleet", "--identity", audID, "whoami")
			return code != 0
		})
		if !ok {
			t.Fatal("a removed user still reaches the API")
		}
	})
}
