package main

import (
	"context"
	"encoding/json"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coffer-backup/coffer/internal/storage"
	"github.com/coffer-backup/coffer/internal/storage/s3"
	"github.com/coffer-backup/coffer/internal/storage/s3/s3test"
)

// noise returns n incompressible bytes, the same for the same seed.
func noise(seed uint64, n int) []byte {
	r := rand.New(rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8)}))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// replicaRun runs server replicate run --json and decodes its report.
func replicaRun(t *testing.T, admin *env, dir, name string, extra ...string) (replicaRunJSON, string, int) {
	t.Helper()
	so, se, code := admin.run(append([]string{"server", "replicate", "run", "--dir", dir, name, "--json"}, extra...)...)
	var rep replicaRunJSON
	if so != "" {
		if err := json.Unmarshal([]byte(so), &rep); err != nil {
			t.Fatalf("replicate run --json: %v\n%s\nstderr: %s", err, so, se)
		}
	}
	return rep, se, code
}

func replicaStatus(t *testing.T, admin *env, dir, name string) replicaStatusJSON {
	t.Helper()
	var st []replicaStatusJSON
	admin.mustJSON(&st, "server", "replicate", "status", "--dir", dir, name, "--json")
	if len(st) != 1 || st[0].Name != name {
		t.Fatalf("replicate status %s: %+v", name, st)
	}
	return st[0]
}

// primaryWithBackup starts a primary server, enrolls a host web1 and backs
// up src into coffer://primary/home.
func primaryWithBackup(t *testing.T, admin *env, files map[string][]byte) (*cofferServer, *env, string) {
	t.Helper()
	p := startServer(t, serverInit(t, admin, "primary"), "127.0.0.1:0")
	host := newEnv(t)
	p.enroll(admin, host, "web1")
	host.repo = p.url("home")
	host.init()
	src := filepath.Join(host.dir, "src")
	for name, b := range files {
		writeFile(t, filepath.Join(src, name), b)
	}
	host.must("backup", "--repo", host.repo, src)
	return p, host, src
}

// TestReplicateToS3 replicates a primary's repository to an S3 bucket
// (versitygw) and restores from the copy with the host's key alone, as
// when the primary is gone; then checks incrementality, independent
// retention, and that tampering at the target is detected.
func TestReplicateToS3(t *testing.T) {
	t.Parallel()
	bucket := s3test.Start(t)
	admin := newEnv(t)
	admin.extra = bucket.Env()
	big := noise(1, 20<<20) // full packs: multipart uploads
	p, host, src := primaryWithBackup(t, admin, map[string][]byte{"a.txt": []byte("hello\n"), "big": big})

	target := bucket.URL("offsite", "coffer")
	admin.must("server", "replicate", "add", "--dir", p.dir, "--name", "off", "--to", target, "--keep-deleted", "30d")
	if st := replicaStatus(t, admin, p.dir, "off"); st.PendingObjects == 0 || st.LagSeconds < 0 || st.LastSuccess != nil {
		t.Fatalf("status before the first pass: %+v", st)
	}
	rep, se, code := replicaRun(t, admin, p.dir, "off")
	if code != 0 || rep.Sent == 0 || len(rep.Failed) != 0 {
		t.Fatalf("first pass: exit %d, %+v\n%s", code, rep, se)
	}
	st := replicaStatus(t, admin, p.dir, "off")
	if st.PendingObjects != 0 || st.LastSuccess == nil || st.Replicated != rep.Sent {
		t.Fatalf("status after the first pass: %+v (pass %+v)", st, rep)
	}
	if fi, err := os.Stat(filepath.Join(admin.dir, "primary", "replicate", "off", "s3-credentials.json")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("kept S3 credentials: %v, %v", fi, err)
	}

	// The primary is gone: the host restores from the bucket with its key.
	p.kill()
	copyRepo := target + "/web1/home"
	rescue := newEnv(t)
	rescue.extra = bucket.Env()
	dst := filepath.Join(rescue.dir, "dst")
	rescue.must("restore", "latest", "--repo", copyRepo, "--target", dst, "--verify")
	if got, err := os.ReadFile(filepath.Join(dst, src, "big")); err != nil || string(got) != string(big) {
		t.Fatalf("restored big from the copy: %d bytes, %v", len(got), err)
	}
	rescue.must("check", "--repo", copyRepo, "--read-data")

	// A second backup: the next pass sends only what changed.
	p = startServer(t, p.dir, "127.0.0.1:0")
	host.repo = p.url("home")
	writeFile(t, filepath.Join(src, "b.txt"), []byte("second\n"))
	host.must("backup", "--repo", host.repo, src)
	if st := replicaStatus(t, admin, p.dir, "off"); st.PendingObjects == 0 || st.PendingObjects > 10 {
		t.Fatalf("status after a small backup: %+v", st)
	}
	rep2, se, code := replicaRun(t, admin, p.dir, "off")
	if code != 0 || rep2.Sent == 0 || rep2.Sent > 10 || rep2.SentBytes > 1<<20 {
		t.Fatalf("second pass sent more than what changed: exit %d, %+v\n%s", code, rep2, se)
	}

	// Independent retention: the primary forgets and prunes everything;
	// the copy keeps it all for --keep-deleted.
	admin.must("server", "client", "--dir", p.dir, "--client", "web1", "--allow-delete")
	time.Sleep(1500 * time.Millisecond) // the server reloads client policy every second
	var snaps []snapshotJSON
	host.mustJSON(&snaps, "snapshots", "--repo", host.repo, "--json")
	for _, s := range snaps {
		host.must("forget", "--repo", host.repo, s.ID)
	}
	for i := 0; i < 2; i++ {
		host.must("prune", "--repo", host.repo, "--max-unused", "0", "--safety-margin", "0s", "--clock-skew", "0s")
	}
	rep3, se, code := replicaRun(t, admin, p.dir, "off")
	if code != 0 || rep3.Kept == 0 || rep3.Deleted != 0 {
		t.Fatalf("pass after the primary pruned: exit %d, %+v\n%s", code, rep3, se)
	}
	// The primary's new index supersedes the old ones, so the copy's
	// index no longer lists the pruned data; its packs and snapshots are
	// all there, and repair index makes them restorable.
	rescue.must("repair", "index", "--repo", copyRepo)
	rescue.must("restore", snaps[0].ID, "--repo", copyRepo, "--target", filepath.Join(rescue.dir, "dst2"))

	// Tampering at the target: check --read-data names the object, and so
	// does a pass that reads back.
	pack := firstPack(t, filepath.Join(bucket.Dir, "offsite", "coffer", "web1", "home", "data"))
	flipByte(t, pack)
	so, se, code := rescue.run("check", "--repo", copyRepo, "--read-data")
	if code == 0 || !strings.Contains(so+se, filepath.Base(pack)[:8]) {
		t.Fatalf("check --read-data of a tampered copy: exit %d, does not name %s\n%s%s", code, filepath.Base(pack), so, se)
	}
}

// firstPack returns the path of a pack file below dir.
func firstPack(t *testing.T, dir string) string {
	t.Helper()
	var found string
	_ = filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() && found == "" {
			found = p
		}
		return nil
	})
	if found == "" {
		t.Fatalf("no pack below %s", dir)
	}
	return found
}

func flipByte(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0x40
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestReplicateDetectsAReplacedCopy: an object at the target replaced by
// another writer (same name, other content) is named by the next pass,
// and a copy changed in place by --read-back.
func TestReplicateDetectsAReplacedCopy(t *testing.T) {
	t.Parallel()
	bucket := s3test.Start(t)
	admin := newEnv(t)
	admin.extra = bucket.Env()
	p, _, _ := primaryWithBackup(t, admin, map[string][]byte{"a": noise(2, 1<<20)})
	target := bucket.URL("offsite", "")
	admin.must("server", "replicate", "add", "--dir", p.dir, "--name", "off", "--to", target)
	if rep, se, code := replicaRun(t, admin, p.dir, "off"); code != 0 || rep.Sent == 0 {
		t.Fatalf("first pass: exit %d %+v\n%s", code, rep, se)
	}
	ctx := context.Background()
	st, err := s3.Open(ctx, bucket.Config("offsite", "web1/home"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var snap string
	if err := st.List(ctx, storage.KindSnapshots, func(fi storage.FileInfo) error { snap = fi.Name; return nil }); err != nil || snap == "" {
		t.Fatalf("no snapshot at the target: %v", err)
	}
	h := storage.Handle{Kind: storage.KindSnapshots, Name: snap}
	old, err := st.Load(ctx, h, 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Remove(ctx, h); err != nil {
		t.Fatal(err)
	}
	forged := append([]byte{}, old...)
	forged[0] ^= 1
	if err := st.Save(ctx, h, forged); err != nil {
		t.Fatal(err)
	}
	rep, se, code := replicaRun(t, admin, p.dir, "off")
	if code == 0 || len(rep.Failed) != 1 || rep.Failed[0].Object != "snapshots/"+snap || !strings.Contains(se, "different object") {
		t.Fatalf("a replaced copy: exit %d, %+v\n%s", code, rep, se)
	}
	if st := replicaStatus(t, admin, p.dir, "off"); !strings.Contains(st.LastError, snap) {
		t.Fatalf("status does not name the object in its last error: %+v", st)
	}

	// In place, behind the store's back: the ETag stays, only reading
	// back finds it.
	if err := st.Remove(ctx, h); err != nil {
		t.Fatal(err)
	}
	if err := st.Save(ctx, h, old); err != nil {
		t.Fatal(err)
	}
	flipByte(t, firstPack(t, filepath.Join(bucket.Dir, "offsite", "web1", "home", "data")))
	if rep, se, code := replicaRun(t, admin, p.dir, "off"); code != 0 {
		t.Fatalf("a pass without read-back: exit %d %+v\n%s", code, rep, se)
	}
	rep, se, code = replicaRun(t, admin, p.dir, "off", "--read-back")
	if code == 0 || len(rep.Failed) != 1 || !strings.HasPrefix(rep.Failed[0].Object, "data/") || !strings.Contains(se, "different object") {
		t.Fatalf("read-back of a tampered copy: exit %d, %+v\n%s", code, rep, se)
	}
}

// TestReplicateKilledMidPass kills replicate run with SIGKILL in the
// middle of a pass; the next run completes and the copy restores.
func TestReplicateKilledMidPass(t *testing.T) {
	t.Parallel()
	bucket := s3test.Start(t)
	admin := newEnv(t)
	admin.extra = bucket.Env()
	data := noise(3, 24<<20)
	p, _, src := primaryWithBackup(t, admin, map[string][]byte{"data": data})
	target := bucket.URL("offsite", "slow")
	admin.must("server", "replicate", "add", "--dir", p.dir, "--name", "slow", "--to", target, "--limit", "6MiB/s")
	cmd := exec.Command(cofferBin, "server", "replicate", "run", "--dir", p.dir, "slow") // #nosec G204 -- the test's binary
	cmd.Env = admin.environ("")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second)
	_ = cmd.Process.Signal(syscall.SIGKILL)
	_ = cmd.Wait()
	st := replicaStatus(t, admin, p.dir, "slow")
	if st.PendingObjects == 0 {
		t.Fatalf("the pass finished before it was killed: %+v", st)
	}
	rep, se, code := replicaRun(t, admin, p.dir, "slow")
	if code != 0 || len(rep.Failed) != 0 {
		t.Fatalf("pass after a kill: exit %d, %+v\n%s", code, rep, se)
	}
	if st := replicaStatus(t, admin, p.dir, "slow"); st.PendingObjects != 0 {
		t.Fatalf("pending after the resumed pass: %+v", st)
	}
	rescue := newEnv(t)
	rescue.extra = bucket.Env()
	dst := filepath.Join(rescue.dir, "dst")
	rescue.must("restore", "latest", "--repo", target+"/web1/home", "--target", dst)
	if got, err := os.ReadFile(filepath.Join(dst, src, "data")); err != nil || string(got) != string(data) {
		t.Fatalf("restored from the resumed copy: %d bytes, %v", len(got), err)
	}
}

// TestReplicateScheduled: the running server makes the passes of a target
// with a schedule; replicate run beside it waits its turn and succeeds.
func TestReplicateScheduled(t *testing.T) {
	t.Parallel()
	bucket := s3test.Start(t)
	admin := newEnv(t)
	admin.extra = bucket.Env()
	p, host, src := primaryWithBackup(t, admin, map[string][]byte{"a": noise(6, 3<<20)})
	admin.must("server", "replicate", "add", "--dir", p.dir, "--name", "sched", "--to", bucket.URL("offsite", "sched"), "--schedule", "every 10s")
	var st replicaStatusJSON
	if !within(40*time.Second, func() bool {
		st = replicaStatus(t, admin, p.dir, "sched")
		return st.LastSuccess != nil && st.PendingObjects == 0
	}) {
		t.Fatalf("the server made no complete pass within 40 s: %+v\n%s", st, p.logText())
	}
	writeFile(t, filepath.Join(src, "b"), []byte("more\n"))
	host.must("backup", "--repo", host.repo, src)
	if rep, se, code := replicaRun(t, admin, p.dir, "sched"); code != 0 || len(rep.Failed) != 0 {
		t.Fatalf("replicate run beside the server: exit %d %+v\n%s", code, rep, se)
	}
	if st := replicaStatus(t, admin, p.dir, "sched"); st.PendingObjects != 0 {
		t.Fatalf("pending after run: %+v", st)
	}
	if !strings.Contains(p.logText(), "replication pass complete") {
		t.Fatalf("the server's log shows no pass:\n%s", p.logText())
	}
}

// TestReplicateBadInput: each bad setting is refused with a line naming
// it, exit 2, and nothing is recorded.
func TestReplicateBadInput(t *testing.T) {
	t.Parallel()
	admin := newEnv(t)
	dir := serverInit(t, admin, "primary")
	base := []string{"server", "replicate", "add", "--dir", dir, "--name", "x"}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--to", "ftp://host/x"}, "--to"},
		{[]string{"--to", "s3:http://127.0.0.1:9/bkt", "--limit", "fast"}, "--limit"},
		{[]string{"--to", "s3:http://127.0.0.1:9/bkt", "--limit", "08:00-25:00=1M"}, "--limit"},
		{[]string{"--to", "s3:http://127.0.0.1:9/bkt", "--schedule", "sometimes"}, "--schedule"},
		{[]string{"--to", "s3:http://127.0.0.1:9/bkt", "--window", "9-5"}, "--window"},
		{[]string{"--to", "s3:http://127.0.0.1:9/bkt", "--keep-deleted", "forever"}, "--keep-deleted"},
		{[]string{"--to", "s3:http://127.0.0.1:9/bkt", "--clients", "../etc"}, "--clients"},
		{[]string{"--to", "coffer://127.0.0.1:9/repo"}, "--to"},
	} {
		_, se, code := admin.run(append(append([]string{}, base...), c.args...)...)
		if code != exitUsage || !strings.Contains(se, c.want) {
			t.Errorf("%v: exit %d, stderr %q; want exit %d naming %s", c.args, code, se, exitUsage, c.want)
		}
	}
	if _, se, code := admin.run(append(base, "--to", "coffer://127.0.0.1:9")...); code == 0 || !strings.Contains(se, "--token-file") {
		t.Errorf("a coffer:// target without a token: exit %d %q", code, se)
	}
	admin.must(append(base, "--to", "s3:http://127.0.0.1:9/bkt")...)
	if _, se, code := admin.run(append(base, "--to", "s3:http://127.0.0.1:9/bkt2")...); code == 0 || !strings.Contains(se, "exists") {
		t.Errorf("a second target of the same name: exit %d %q", code, se)
	}
	if _, se, code := admin.run("server", "replicate", "run", "--dir", dir, "nosuch"); code == 0 || !strings.Contains(se, "nosuch") {
		t.Errorf("run of an unknown target: exit %d %q", code, se)
	}
	// Nothing stored yet: a pass has nothing to send and does not need
	// the target.
	if rep, se, code := replicaRun(t, admin, dir, "x"); code != 0 || rep.Repos != 0 || rep.Sent != 0 {
		t.Errorf("a pass with nothing stored: exit %d %+v %q", code, rep, se)
	}
	var list []replicaTargetJSON
	admin.mustJSON(&list, "server", "replicate", "list", "--dir", dir, "--json")
	if len(list) != 1 || list[0].Name != "x" || list[0].KeepDeletedSeconds != 30*24*3600 {
		t.Fatalf("list: %+v", list)
	}
	admin.must("server", "replicate", "remove", "--dir", dir, "x")
	admin.mustJSON(&list, "server", "replicate", "list", "--dir", dir, "--json")
	if len(list) != 0 {
		t.Fatalf("list after remove: %+v", list)
	}
}

// TestReplicateLockDays: replicate add --lock-days refuses a bucket
// without object lock with a clear error, makes a missing one with it,
// and list shows the settings; --lock-days on a coffer:// target is a
// usage error.
func TestReplicateLockDays(t *testing.T) {
	t.Parallel()
	bucket := s3test.Start(t)
	admin := newEnv(t)
	admin.extra = bucket.Env()
	dir := serverInit(t, admin, "primary")
	plain := bucket.NewBucket(t)
	so, se, code := admin.run("server", "replicate", "add", "--dir", dir, "--name", "off", "--to", bucket.URL(plain, "x"), "--lock-days", "7")
	if code == 0 || !strings.Contains(se, "object lock is not enabled") || !strings.Contains(se, plain) {
		t.Fatalf("add --lock-days to a bucket without object lock: exit %d\n%s%s", code, so, se)
	}
	admin.must("server", "replicate", "add", "--dir", dir, "--name", "off", "--to", bucket.URL("worm", "x"), "--lock-days", "7",
		"--parallel", "8", "--alert-lag", "6h")
	var list []replicaTargetJSON
	admin.mustJSON(&list, "server", "replicate", "list", "--dir", dir, "--json")
	if len(list) != 1 || list[0].LockDays != 7 || list[0].Parallel != 8 || list[0].AlertLagSeconds != 6*3600 {
		t.Fatalf("list: %+v", list)
	}
	_, se, code = admin.run("server", "replicate", "add", "--dir", dir, "--name", "c", "--to", "coffer://127.0.0.1:1", "--lock-days", "7")
	if code != 2 || !strings.Contains(se, "--lock-days") {
		t.Fatalf("--lock-days on a coffer:// target: exit %d\n%s", code, se)
	}
}
