package main

import (
	"encoding/json"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/coffer-backup/coffer/internal/fleet/api"
	"github.com/coffer-backup/coffer/internal/serverdb"
)

// TestRetentionOnServerTime drives a real `coffer server run`: a host that
// forges --time on its backups does not change what retention keeps
// (arrival stamps decide), a deletion outside a grant is refused and
// audited, the host's forget and prune inside the grant of a run-now prune
// land in the trash, and `server trash restore` brings them back to a
// repository that checks clean.
func TestRetentionOnServerTime(t *testing.T) {
	t.Parallel()
	admin := newEnv(t)
	dir := serverInit(t, admin, "server")
	srv := startServer(t, dir, "127.0.0.1:0")
	adminID := filepath.Join(dir, "admin")
	host := newEnv(t)
	srv.enroll(admin, host, "web1")
	mustFleet(admin, srv, adminID, "policy", "set", "--client", "web1", "--paths", "/data", "--schedule", "@daily", "--keep-last", "2")

	repo := srv.url("web1") // the policy's default location
	host.must(append([]string{"init", "--repo", repo}, cheapKDF...)...)
	src := filepath.Join(host.dir, "src")
	// Four backups, each with data of its own; the last claims the year 2001.
	for i, claim := range []string{"", "", "", "2001-01-01 00:00:00"} {
		writeFile(t, filepath.Join(src, "f"), pruneRandom(uint64(i+1), 200<<10))
		args := []string{"backup", "--repo", repo, src}
		if claim != "" {
			args = append(args, "--time", claim)
		}
		host.must(args...)
	}
	var snaps []snapshotJSON
	if err := json.Unmarshal([]byte(host.must("snapshots", "--repo", repo, "--json")), &snaps); err != nil || len(snaps) != 4 {
		t.Fatalf("snapshots: %+v %v", snaps, err)
	}
	slices.SortFunc(snaps, func(a, b snapshotJSON) int { return strings.Compare(a.Time, b.Time) })
	forged := snaps[0] // the claimed 2001 sorts first
	if !strings.HasPrefix(forged.Time, "2001-01-01") {
		t.Fatalf("the forged snapshot's time is %s", forged.Time)
	}
	// In arrival order: snaps[1], snaps[2], snaps[3], forged.
	first, second := snaps[1].ID, snaps[2].ID

	// Outside a grant the host cannot delete.
	if _, se, code := host.run("forget", "--repo", repo, first); code == 0 {
		t.Fatalf("forget outside a grant succeeded: %s", se)
	}
	if n := snapshotCount(t, host, repo); n != 4 {
		t.Fatalf("%d snapshots after a refused forget, want 4", n)
	}
	if evs := srv.events(serverdb.ActionDeleteRefused); len(evs) == 0 || evs[0].Client != "web1" || !strings.HasPrefix(evs[0].Object, "snapshots/") {
		t.Fatalf("refusal audited: %+v", evs)
	}

	// A run-now prune carries the grant retention makes on arrival stamps:
	// the two first to arrive, never the forged one.
	var job api.JobInfo
	if err := json.Unmarshal([]byte(mustFleet(admin, srv, adminID, "run-now", "web1", "--kind", "prune", "--json")), &job); err != nil {
		t.Fatal(err)
	}
	var spec api.Job
	if err := json.Unmarshal(storedJob(t, dir, job.ID).Spec, &spec); err != nil || spec.Grant == nil {
		t.Fatalf("job spec: %v", err)
	}
	got := slices.Sorted(slices.Values(spec.Grant.Snapshots))
	want := slices.Sorted(slices.Values([]string{first, second}))
	if !slices.Equal(got, want) {
		t.Fatalf("grant %v, want the first two arrivals %v (forged: %s)", got, want, forged.ID)
	}

	// Inside the grant the host forgets what it names and prunes.
	host.must("forget", "--repo", repo, first, second)
	host.must("prune", "--repo", repo)
	if n := snapshotCount(t, host, repo); n != 2 {
		t.Fatalf("%d snapshots after the granted forget, want 2", n)
	}
	// Not granted: the forged snapshot stays.
	if _, _, code := host.run("forget", "--repo", repo, forged.ID); code == 0 {
		t.Fatal("forget of a snapshot the grant does not name succeeded")
	}
	var trash []serverTrashEntryJSON
	if err := json.Unmarshal([]byte(admin.must("server", "trash", "list", "--dir", dir, "--client", "web1", "--json")), &trash); err != nil {
		t.Fatal(err)
	}
	var trashed []string
	for _, e := range trash {
		if strings.HasPrefix(e.Object, "snapshots/") {
			trashed = append(trashed, strings.TrimPrefix(e.Object, "snapshots/"))
		}
	}
	if slices.Sort(trashed); !slices.Equal(trashed, want) {
		t.Fatalf("trash holds snapshots %v, want %v (all: %+v)", trashed, want, trash)
	}
	for _, e := range srv.events(serverdb.ActionDelete) {
		if e.Client == "web1" && !strings.Contains(e.Detail, "grant="+job.ID) && !strings.HasPrefix(e.Object, "locks/") {
			t.Errorf("deletion without its grant named: %+v", e)
		}
	}

	admin.must("server", "trash", "restore", "--dir", dir, "--client", "web1")
	if n := snapshotCount(t, host, repo); n != 4 {
		t.Fatalf("%d snapshots after the trash restore, want 4", n)
	}
	// The prune's new index marks the old ones superseded: the host
	// indexes the restored packs again, then everything checks.
	host.must("repair", "index", "--repo", repo)
	host.must("check", "--repo", repo, "--read-data")
}
