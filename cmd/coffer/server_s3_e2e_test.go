package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coffer-backup/coffer/internal/storage/s3/s3test"
)

// TestServerOnS3 runs a real `coffer server run` whose objects are in an
// S3 bucket (versitygw): init records the location and no credentials; a
// host backs up, restores and checks; the bucket holds only sealed
// objects under PREFIX/CLIENT/REPO, which replication and seed export
// read; quota and append-only refusals hold;
// a deletion under a grant goes to the bucket's trash and comes back
// with `server trash restore`; and a bit flipped in a bucket object is
// named by `server scrub` and by the host's check --read-data.
func TestServerOnS3(t *testing.T) {
	t.Parallel()
	bucket := s3test.Start(t)
	admin := newEnv(t)
	admin.extra = bucket.Env()
	dir := filepath.Join(admin.dir, "server")
	loc := bucket.URL("coffer", "srv")
	// Wrong credentials: one line that says so, and nothing written.
	wrong := newEnv(t)
	wrong.extra = []string{"AWS_ACCESS_KEY_ID=" + bucket.AccessKey, "AWS_SECRET_ACCESS_KEY=wrong", "AWS_DEFAULT_REGION=us-east-1"}
	if _, se, code := wrong.run("server", "init", "--dir", dir, "--listen", "127.0.0.1:0", "--storage", loc); code == 0 || !strings.Contains(se, "refused the credentials") || strings.Contains(se, bucket.SecretKey) {
		t.Fatalf("init with a wrong secret: exit %d\n%s", code, se)
	}
	if _, err := os.Stat(filepath.Join(dir, "config.json")); !os.IsNotExist(err) {
		t.Fatalf("init with a wrong secret wrote the state directory: %v", err)
	}
	admin.must("server", "init", "--dir", dir, "--listen", "127.0.0.1:0", "--storage", loc)
	cfg, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil || !strings.Contains(string(cfg), `"storage": "`+loc+`"`) {
		t.Fatalf("config.json does not record the storage: %s %v", cfg, err)
	}
	_ = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if b, _ := os.ReadFile(p); strings.Contains(string(b), bucket.SecretKey) || strings.Contains(string(b), bucket.AccessKey) {
				t.Errorf("%s holds the S3 credentials", p)
			}
		}
		return nil
	})
	// A server without credentials says what it needs.
	if _, se, code := newEnv(t).run("server", "run", "--dir", dir, "--listen", "127.0.0.1:0"); code == 0 || !strings.Contains(se, "no S3 credentials") {
		t.Fatalf("server run without credentials: exit %d\n%s", code, se)
	}
	srv := startServerEnv(t, dir, "127.0.0.1:0", bucket.Env())
	if strings.Contains(srv.logText(), bucket.SecretKey) {
		t.Fatal("the server logged the S3 secret")
	}
	adminID := filepath.Join(dir, "admin")
	host := newEnv(t)
	srv.enroll(admin, host, "web1")
	mustFleet(admin, srv, adminID, "policy", "set", "--client", "web1", "--paths", "/data", "--schedule", "@daily", "--keep-last", "1")
	repo := srv.url("web1")
	host.repo = repo
	host.init()
	src := filepath.Join(host.dir, "src")
	for i := range 2 {
		writeFile(t, filepath.Join(src, "f"), pruneRandom(uint64(i+1), 300<<10))
		host.must("backup", "--repo", repo, src)
	}
	dst := filepath.Join(host.dir, "dst")
	host.must("restore", "latest", "--repo", repo, "--target", dst)
	diffTrees(t, src, filepath.Join(dst, src))
	host.must("check", "--repo", repo, "--read-data")

	// The objects are in the bucket, sealed; none in the state directory.
	repoDir := filepath.Join(bucket.Dir, "coffer", "srv", "web1", "web1")
	pack := firstPack(t, filepath.Join(repoDir, "data"))
	if local := firstFile(filepath.Join(dir, "objects")); local != "" {
		t.Fatalf("object in the state directory: %s", local)
	}
	if b, _ := os.ReadFile(filepath.Join(repoDir, "config")); len(b) == 0 {
		t.Fatal("no config object in the bucket")
	}

	// The objects in the bucket are a replication source: a pass to
	// another prefix gives a copy the host restores with its key alone;
	// a seed export reads them as well.
	target := bucket.URL("offsite", "copy")
	admin.must("server", "replicate", "add", "--dir", dir, "--name", "off", "--to", target)
	if rep, se, code := replicaRun(t, admin, dir, "off"); code != 0 || rep.Sent == 0 || len(rep.Failed) != 0 {
		t.Fatalf("replication from a bucket-backed server: exit %d, %+v\n%s", code, rep, se)
	}
	rescue := newEnv(t)
	rescue.extra = bucket.Env()
	rescue.must("restore", "latest", "--repo", target+"/web1/web1", "--target", filepath.Join(rescue.dir, "dst"))
	diffTrees(t, src, filepath.Join(rescue.dir, "dst", src))
	var exp seedJSON
	admin.mustJSON(&exp, "server", "seed", "export", "--dir", dir, "--to", filepath.Join(admin.dir, "seed"), "--json")
	if exp.Objects == 0 || exp.Written != exp.Objects {
		t.Fatalf("seed export from a bucket-backed server: %+v", exp)
	}

	// Append-only: outside a grant the host cannot forget.
	var snaps []snapshotJSON
	host.mustJSON(&snaps, "snapshots", "--repo", repo, "--json")
	if _, se, code := host.run("forget", "--repo", repo, snaps[0].ID); code == 0 {
		t.Fatalf("forget outside a grant succeeded: %s", se)
	}

	// Under a run-now prune's grant, forget and prune land in the
	// bucket's trash, and trash restore brings them back.
	mustFleet(admin, srv, adminID, "run-now", "web1", "--kind", "prune", "--json")
	older := snaps[0]
	if snaps[1].Time < older.Time {
		older = snaps[1]
	}
	host.must("forget", "--repo", repo, older.ID)
	if n := snapshotCount(t, host, repo); n != 1 {
		t.Fatalf("%d snapshots after the granted forget, want 1", n)
	}
	var trash []serverTrashEntryJSON
	if err := json.Unmarshal([]byte(admin.must("server", "trash", "list", "--dir", dir, "--client", "web1", "--json")), &trash); err != nil {
		t.Fatal(err)
	}
	if len(trash) != 1 || trash[0].Object != "snapshots/"+older.ID {
		t.Fatalf("trash: %+v, want snapshots/%s", trash, older.ID)
	}
	if firstFile(filepath.Join(bucket.Dir, "coffer", "srv", ".trash", "web1")) == "" {
		t.Fatal("nothing under the bucket's trash prefix")
	}
	admin.must("server", "trash", "restore", "--dir", dir, "--client", "web1")
	if n := snapshotCount(t, host, repo); n != 2 {
		t.Fatalf("%d snapshots after the trash restore, want 2", n)
	}

	// A quota below what the next backup needs is refused.
	admin.must("server", "client", "--dir", dir, "--client", "web1", "--quota", "2MiB")
	time.Sleep(1500 * time.Millisecond) // the server reloads client policy every second
	writeFile(t, filepath.Join(src, "big"), pruneRandom(9, 3<<20))
	if _, se, code := host.run("backup", "--repo", repo, src); code == 0 || !strings.Contains(strings.ToLower(se), "quota") {
		t.Fatalf("backup over the quota: exit %d\n%s", code, se)
	}
	admin.must("server", "client", "--dir", dir, "--client", "web1", "--quota", "0")

	// A bit flipped in the bucket is named by scrub and by check.
	admin.must("server", "scrub", "--dir", dir)
	flipByte(t, pack)
	so, _, code := admin.run("server", "scrub", "--dir", dir)
	if code == 0 || !strings.Contains(so, "DAMAGED") || !strings.Contains(so, filepath.Base(pack)) {
		t.Fatalf("scrub missed a flipped bit in %s: exit %d: %s", pack, code, so)
	}
	so, se, code := host.run("check", "--repo", repo, "--read-data")
	if code == 0 || !strings.Contains(so+se, filepath.Base(pack)[:8]) {
		t.Fatalf("check --read-data of a damaged bucket object: exit %d, does not name %s\n%s%s", code, filepath.Base(pack), so, se)
	}
}

// firstFile returns a regular file below dir, or "".
func firstFile(dir string) string {
	var found string
	_ = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() && found == "" {
			found = p
		}
		return nil
	})
	return found
}
