package main

import (
	"crypto/rand"
	"encoding/json"
	"github.com/coffer-backup/coffer/internal/auditlog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coffer-backup/coffer/internal/fleet/api"
)

// TestFleetJobsEndToEnd drives the fleet's jobs with real processes: a
// `coffer server run`, its admin identity from server init, a host
// enrolled with server token and coffer enroll running `coffer agent run`
// under an `every 10s` policy set with fleet policy set. The scheduled
// backup shows in fleet status; run-now --wait and restore --wait exit 0
// and the restore lands under the restore root on the agent's host; a
// target outside it is refused; an operator scoped to another group is
// refused (exit 14, role and scope named, audited); cancelling a running
// backup ends it cancelled and run-now --wait on a cancelled job exits 16.
func TestFleetJobsEndToEnd(t *testing.T) {
	t.Parallel()
	admin := newEnv(t)
	dir := serverInit(t, admin, "server")
	adminID := filepath.Join(dir, "admin")
	srv := startServer(t, dir, "127.0.0.1:0")

	host := newEnv(t)
	src := filepath.Join(host.dir, "src")
	writeFile(t, filepath.Join(src, "a.txt"), []byte("fleet data"))
	writeFile(t, filepath.Join(src, "sub", "b.txt"), []byte("more fleet data"))
	root := filepath.Join(host.dir, "restore")
	mustFleet(admin, srv, adminID, "policy", "set", "--client", "web1", "--paths", src, "--schedule", "every 10s", "--restore-root", root)

	hostID := filepath.Join(host.dir, "agent-id")
	tokFile := filepath.Join(host.dir, "web1.token")
	writeFile(t, tokFile, []byte(srv.token(admin, "web1")+"\n"))
	host.must("enroll", "--server", srv.addr, "--token-file", tokFile, "--identity", hostID)
	// The upload limit leaves the small backups quick and holds the big
	// one of the cancel step long enough to cancel it.
	ag := startAgentProc(t, host, "--identity", hostID, "--limit-upload", "256")

	status := func() fleetHostJSON {
		var st []fleetHostJSON
		out := mustFleet(admin, srv, adminID, "status", "--json")
		if err := json.Unmarshal([]byte(out), &st); err != nil || len(st) != 1 {
			t.Fatalf("status --json: %v\n%s", err, out)
		}
		return st[0]
	}
	t0 := time.Now()
	var hs fleetHostJSON
	if !within(25*time.Second, func() bool {
		hs = status()
		return hs.LastBackup != nil && hs.LastBackup.State == api.StateSucceeded
	}) {
		t.Fatalf("no scheduled backup in fleet status: %+v\nagent log:\n%s", hs, ag.logText())
	}
	t.Logf("first scheduled backup in fleet status after %s", time.Since(t0).Round(time.Millisecond))
	if hs.Client != "web1" || !hs.Online || hs.RPO != api.RPOOk || len(hs.LastBackup.Snapshot) != 64 ||
		hs.NextRun == nil || hs.LastSeen == nil || hs.AgentVersion == "" {
		t.Fatalf("status after the scheduled backup: %+v", hs)
	}
	var raw []map[string]json.RawMessage
	if err := json.Unmarshal([]byte(mustFleet(admin, srv, adminID, "status", "--json")), &raw); err != nil || len(raw) != 1 {
		t.Fatalf("status --json: %v", err)
	}
	for _, k := range []string{"client", "online", "last_seen", "last_backup", "next_run", "rpo", "repository_bytes", "last_check", "agent_version", "agent_outdated"} {
		if _, ok := raw[0][k]; !ok {
			t.Errorf("status --json lacks %q: %v", k, raw[0])
		}
	}
	var lb struct {
		Time     *time.Time `json:"time"`
		State    string     `json:"state"`
		Snapshot *string    `json:"snapshot"`
	}
	if err := json.Unmarshal(raw[0]["last_backup"], &lb); err != nil || lb.Time == nil || lb.State != "succeeded" || lb.Snapshot == nil {
		t.Errorf("status --json last_backup: %s (%v)", raw[0]["last_backup"], err)
	}
	out := mustFleet(admin, srv, adminID, "status")
	if !strings.Contains(out, "web1") || !strings.Contains(out, "succeeded") || !strings.Contains(out, "RPO") {
		t.Fatalf("status:\n%s", out)
	}

	t.Run("run-now --wait exits with the job's outcome", func(t *testing.T) {
		so, se, code := orderWaiting(admin, srv, adminID, "run-now", "web1", "--wait", "--json")
		var j fleetJobJSON
		if code != 0 || json.Unmarshal([]byte(so), &j) != nil || j.State != api.StateSucceeded || j.Kind != api.KindBackup ||
			j.Scheduled || j.OrderedBy != "user:admin" || len(j.Snapshot) != 64 {
			t.Fatalf("run-now --wait: exit %d %+v\nstdout: %s\nstderr: %s", code, j, so, se)
		}
		var jobs fleetJobsJSON
		if err := json.Unmarshal([]byte(mustFleet(admin, srv, adminID, "jobs", "--client", "web1", "--state", "succeeded", "--json")), &jobs); err != nil {
			t.Fatal(err)
		}
		if len(jobs) < 2 || !containsJob(jobs, j.ID) {
			t.Fatalf("jobs --state succeeded lacks the run-now job %s: %+v", j.ID, jobs)
		}
		if _, se, code := fleetAs(admin, srv, adminID, "jobs", "--state", "done"); code == 0 || !strings.Contains(se, "done") {
			t.Fatalf("jobs --state done: exit %d: %s", code, se)
		}
	})

	t.Run("a restore lands under the restore root on the host", func(t *testing.T) {
		target := filepath.Join(root, "r1")
		so, se, code := orderWaiting(admin, srv, adminID, "restore", "web1", "--snapshot", "latest", "--target", target, "--wait")
		if code != 0 || !strings.Contains(so, "succeeded") {
			t.Fatalf("restore --wait: exit %d\nstdout: %s\nstderr: %s", code, so, se)
		}
		for name, want := range map[string]string{"a.txt": "fleet data", "sub/b.txt": "more fleet data"} {
			if b, err := os.ReadFile(filepath.Join(target, src, name)); err != nil || string(b) != want {
				t.Fatalf("restored %s: %q, %v", name, b, err)
			}
		}
		outside := filepath.Join(host.dir, "elsewhere")
		_, se, code = fleetAs(admin, srv, adminID, "restore", "web1", "--snapshot", "latest", "--target", outside, "--wait")
		if code == 0 || !strings.Contains(se, "restore root") || !strings.Contains(se, outside) {
			t.Fatalf("restore outside the root: exit %d: %s", code, se)
		}
		if _, err := os.Stat(outside); !os.IsNotExist(err) {
			t.Fatalf("a refused restore wrote %s: %v", outside, err)
		}
	})

	t.Run("an operator of another group is refused and audited", func(t *testing.T) {
		mustFleet(admin, srv, adminID, "group", "add", "db")
		op := newEnv(t)
		opID := filepath.Join(op.dir, "id")
		tok := strings.TrimSpace(mustFleet(admin, srv, adminID, "user", "add", "op2", "--role", "operator", "--scope", "group:db"))
		file := filepath.Join(op.dir, "op2.token")
		writeFile(t, file, []byte(tok+"\n"))
		op.must("enroll", "--server", srv.addr, "--token-file", file, "--identity", opID)
		so, se, code := op.run("fleet", "--identity", opID, "run-now", "web1", "--wait")
		if code != exitForbidden || !strings.Contains(se, `operator "op2"`) || !strings.Contains(se, "scope group:db") ||
			!strings.Contains(se, "web1") || strings.Contains(se, "operation not permitted") || strings.Count(se, "refused for lack of rights") != 1 {
			t.Fatalf("run-now out of scope: exit %d, want %d naming role and scope once\nstdout: %s\nstderr: %s", code, exitForbidden, so, se)
		}
		if _, se, code := op.run("fleet", "--identity", opID, "restore", "web1", "--snapshot", "latest", "--target", filepath.Join(root, "op")); code != exitForbidden {
			t.Fatalf("restore out of scope: exit %d: %s", code, se)
		}
		var st []fleetHostJSON
		if err := json.Unmarshal([]byte(op.must("fleet", "--identity", opID, "status", "--json")), &st); err != nil || len(st) != 0 {
			t.Fatalf("the operator's status shows hosts outside its scope: %+v %v", st, err)
		}
		evs := srv.audited(admin, "run-now")
		found := false
		for _, e := range evs {
			found = found || e.Actor.Name == "op2" && e.Outcome == auditlog.OutcomeRefused && e.Target == "client:web1"
		}
		if !found {
			t.Fatalf("the refusal is not in the audit events: %+v", evs)
		}
	})

	t.Run("cancelling a running backup ends it cancelled", func(t *testing.T) {
		big := make([]byte, 8<<20) // 32 s at the agent's 256 KiB/s
		if _, err := rand.Read(big); err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(src, "big.bin"), big)
		id := strings.TrimSpace(mustFleet(admin, srv, adminID, "run-now", "web1"))
		if !api.ValidID(id) {
			t.Fatalf("run-now printed %q", id)
		}
		// The ordered job runs unless a scheduled one holds the repository
		// (then it is skipped): cancel whichever backup is running.
		var running fleetJobsJSON
		if !within(15*time.Second, func() bool {
			out := mustFleet(admin, srv, adminID, "jobs", "--client", "web1", "--state", "running", "--json")
			return json.Unmarshal([]byte(out), &running) == nil && len(running) > 0
		}) {
			t.Fatalf("no running backup:\n%s", ag.logText())
		}
		out := mustFleet(admin, srv, adminID, "cancel", running[0].ID)
		if !strings.Contains(out, "cancellation sent") {
			t.Fatalf("cancel: %s", out)
		}
		t1 := time.Now()
		if !within(10*time.Second, func() bool {
			out := mustFleet(admin, srv, adminID, "jobs", "--client", "web1", "--state", "cancelled", "--json")
			var jobs fleetJobsJSON
			return json.Unmarshal([]byte(out), &jobs) == nil && containsJob(jobs, running[0].ID)
		}) {
			t.Fatalf("the cancelled job did not end cancelled: %s\nagent log:\n%s", mustFleet(admin, srv, adminID, "jobs", "--client", "web1"), ag.logText())
		}
		t.Logf("running backup cancelled %s after fleet cancel", time.Since(t1).Round(time.Millisecond))
		// Cancelling it again: it has ended.
		if _, se, code := fleetAs(admin, srv, adminID, "cancel", running[0].ID); code == 0 || !strings.Contains(se, "cancelled already") {
			t.Fatalf("second cancel: exit %d: %s", code, se)
		}
		if _, se, code := fleetAs(admin, srv, adminID, "cancel", "not-a-job"); code != exitUsage {
			t.Fatalf("cancel of a malformed ID: exit %d: %s", code, se)
		}

		// run-now --wait follows its job to its cancellation: exit 16.
		for attempt := 0; ; attempt++ {
			type result struct {
				so, se string
				code   int
			}
			done := make(chan result, 1)
			go func() {
				so, se, code := fleetAs(admin, srv, adminID, "run-now", "web1", "--wait")
				done <- result{so, se, code}
			}()
			var r result
			for waiting := true; waiting; {
				select {
				case r = <-done:
					waiting = false
				case <-time.After(200 * time.Millisecond):
					var jobs fleetJobsJSON
					out := mustFleet(admin, srv, adminID, "jobs", "--client", "web1", "--state", "running", "--json")
					if json.Unmarshal([]byte(out), &jobs) == nil {
						for _, j := range jobs {
							if !j.CancelRequested {
								mustFleet(admin, srv, adminID, "cancel", j.ID)
							}
						}
					}
				}
			}
			if r.code == exitJobFailed && strings.Contains(r.se, "skipped") && attempt < 2 {
				continue // a scheduled backup held the repository
			}
			if r.code != exitJobCancelled || !strings.Contains(r.se, "cancelled") {
				t.Fatalf("run-now --wait of a cancelled job: exit %d, want %d\nstdout: %s\nstderr: %s", r.code, exitJobCancelled, r.so, r.se)
			}
			break
		}
	})
}

// orderWaiting runs a fleet order with --wait, again if the job was
// skipped because a scheduled backup held the repository (an `every 10s`
// schedule may start one at the same moment).
func orderWaiting(e *env, srv *cofferServer, id string, args ...string) (string, string, int) {
	e.t.Helper()
	for range 3 {
		so, se, code := fleetAs(e, srv, id, args...)
		if code != exitJobFailed || !strings.Contains(so+se, "skipped") {
			return so, se, code
		}
		e.t.Logf("%s skipped (the repository was busy), again: %s", args[0], se)
	}
	e.t.Fatalf("%s skipped three times", args[0])
	return "", "", 0
}

func containsJob(jobs []api.JobInfo, id string) bool {
	for _, j := range jobs {
		if j.ID == id {
			return true
		}
	}
	return false
}
