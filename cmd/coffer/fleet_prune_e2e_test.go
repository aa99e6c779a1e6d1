package main

import (
	"encoding/json"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coffer-backup/coffer/internal/agent"
	"github.com/coffer-backup/coffer/internal/fleet/api"
)

// TestAgentPruneUnderGrant runs a real agent on an `every 10s` policy
// with keep-last 1 against a real server: a run-now prune carries the
// grant the server makes from its keep rules on its arrival stamps, the
// agent forgets and prunes under it, what it deleted is in the server's
// trash, and the host deleting a snapshot the grant does not name is
// refused and audited.
func TestAgentPruneUnderGrant(t *testing.T) {
	t.Parallel()
	start := time.Now()
	admin := newEnv(t)
	dir := serverInit(t, admin, "server")
	adminID := filepath.Join(dir, "admin")
	srv := startServer(t, dir, "127.0.0.1:0")

	host := newEnv(t)
	src := filepath.Join(host.dir, "src")
	writeFile(t, filepath.Join(src, "f"), pruneRandom(1, 64<<10))
	mustFleet(admin, srv, adminID, "policy", "set", "--client", "web1", "--paths", src, "--schedule", "every 10s", "--keep-last", "1")
	hostID := filepath.Join(host.dir, "agent-id")
	tokFile := filepath.Join(host.dir, "web1.token")
	writeFile(t, tokFile, []byte(srv.token(admin, "web1")+"\n"))
	host.must("enroll", "--server", srv.addr, "--token-file", tokFile, "--identity", hostID)
	ag := startAgentProc(t, host, "--identity", hostID)

	// The host's own key and certificate, as an administrator on the host
	// would use them by hand.
	byHand := &env{t: t, dir: host.dir, repo: host.repo, extra: []string{
		"COFFER_PASSWORD_FILE=" + filepath.Join(hostID, agent.DefaultKeyFile), "COFFER_IDENTITY=" + hostID}}
	repo := srv.url("web1")
	snapshots := func() []snapshotJSON {
		so, _, code := byHand.runPass("", "snapshots", "--repo", repo, "--json")
		var s []snapshotJSON
		if code != 0 || json.Unmarshal([]byte(so), &s) != nil {
			return nil
		}
		return s
	}
	if !within(25*time.Second, func() bool { return len(snapshots()) > 0 }) {
		t.Fatalf("no scheduled backup\nagent log:\n%s", ag.logText())
	}
	// New data for the next backup, so that the first one's pack is
	// garbage once it is forgotten.
	writeFile(t, filepath.Join(src, "f"), pruneRandom(2, 64<<10))
	if !within(15*time.Second, func() bool { return len(snapshots()) > 1 }) {
		t.Fatalf("no second scheduled backup\nagent log:\n%s", ag.logText())
	}

	so, se, code := orderWaiting(admin, srv, adminID, "run-now", "web1", "--kind", "prune", "--wait", "--json")
	if code != 0 {
		t.Fatalf("run-now prune --wait: exit %d\n%s\n%s\nagent log:\n%s", code, so, se, ag.logText())
	}
	var job api.JobInfo
	if err := json.Unmarshal([]byte(so), &job); err != nil || job.State != api.StateSucceeded {
		t.Fatalf("prune job %+v %v", job, err)
	}
	var spec api.Job
	if err := json.Unmarshal(storedJob(t, dir, job.ID).Spec, &spec); err != nil || spec.Grant == nil || len(spec.Grant.Snapshots) == 0 {
		t.Fatalf("the prune's grant: %+v %v", spec.Grant, err)
	}
	granted := slices.Sorted(slices.Values(spec.Grant.Snapshots))

	// What the agent deleted waits in the trash: the granted snapshots
	// and the packs and indexes the prune replaced.
	var trash []serverTrashEntryJSON
	if err := json.Unmarshal([]byte(admin.must("server", "trash", "list", "--dir", dir, "--client", "web1", "--json")), &trash); err != nil {
		t.Fatal(err)
	}
	var trashed []string
	kinds := map[string]int{}
	for _, e := range trash {
		kind, name, _ := strings.Cut(e.Object, "/")
		kinds[kind]++
		if kind == "snapshots" {
			trashed = append(trashed, name)
		}
	}
	if slices.Sort(trashed); !slices.Equal(trashed, granted) || kinds["data"] == 0 {
		t.Fatalf("trash holds snapshots %v (want the grant's %v) and %v\n%+v", trashed, granted, kinds, trash)
	}
	left := snapshots()
	for _, s := range left {
		if slices.Contains(granted, s.ID) {
			t.Fatalf("granted snapshot %s is still there", s.ID)
		}
	}

	// The host deleting what the grant does not name is refused, and the
	// refusal is audited; nothing is lost.
	if len(left) == 0 {
		t.Fatal("keep-last 1 kept nothing")
	}
	if _, se, code := byHand.runPass("", "forget", "--repo", repo, left[0].ID); code == 0 {
		t.Fatalf("forget outside the grant succeeded: %s", se)
	}
	if !slices.ContainsFunc(snapshots(), func(s snapshotJSON) bool { return s.ID == left[0].ID }) {
		t.Fatal("a refused forget removed the snapshot")
	}
	var entries []api.AuditEntry
	if !within(5*time.Second, func() bool {
		entries = fleetAudit(t, admin, srv, adminID, "--client", "web1")
		_, ok := findEntry(entries, func(e api.AuditEntry) bool {
			return e.Action == "delete-refused" && e.Details["object"] == "snapshots/"+left[0].ID
		})
		return ok
	}) {
		t.Fatalf("the refused deletion is not in the audit log: %+v", entries)
	}
	if _, ok := findEntry(entries, func(e api.AuditEntry) bool {
		return e.Action == "grant" && e.Details["job"] == job.ID && e.Actor.Name == "admin"
	}); !ok {
		t.Fatalf("the grant is not in the audit log: %+v", entries)
	}
	if _, ok := findEntry(entries, func(e api.AuditEntry) bool {
		return e.Action == "delete" && strings.Contains(e.Details["detail"], "grant="+job.ID)
	}); !ok {
		t.Fatalf("no deletion under the grant in the audit log: %+v", entries)
	}
	t.Logf("took %s", time.Since(start).Round(time.Millisecond))
}
