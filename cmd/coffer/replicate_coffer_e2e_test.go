package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coffer-backup/coffer/internal/serverdb"
)

// offsiteServer starts a second server and adds it as target name of the
// primary in pdir, enrolled as client primary-a.
func offsiteServer(t *testing.T, admin *env, pdir, name string, extra ...string) *cofferServer {
	t.Helper()
	off := startServer(t, serverInit(t, admin, "offsite-"+name), "127.0.0.1:0")
	tok := filepath.Join(admin.dir, name+".token")
	writeFile(t, tok, []byte(off.token(admin, "primary-a")+"\n"))
	admin.must(append([]string{"server", "replicate", "add", "--dir", pdir, "--name", name, "--to", "coffer://" + off.addr, "--token-file", tok}, extra...)...)
	if fi, err := os.Stat(filepath.Join(pdir, "replicate", name, "client.key")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("the primary's identity at the target: %v, %v", fi, err)
	}
	return off
}

// TestReplicateToCofferServer replicates to a second coffer server that
// disappears mid-pass and comes back; the next pass completes, and the
// host restores from the second server with the primary's identity there
// and its own key.
func TestReplicateToCofferServer(t *testing.T) {
	t.Parallel()
	admin := newEnv(t)
	data := noise(4, 12<<20)
	p, _, src := primaryWithBackup(t, admin, map[string][]byte{"data": data, "a.txt": []byte("a\n")})
	off := offsiteServer(t, admin, p.dir, "off", "--limit", "4MiB/s")

	cmd := exec.Command(cofferBin, "server", "replicate", "run", "--dir", p.dir, "off") // #nosec G204 -- the test's binary
	cmd.Env = admin.environ("")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	off.kill() // the target disappears mid-pass
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err == nil {
			t.Fatalf("replicate run succeeded though its target was killed mid-pass\n%s", stderr.String())
		}
	case <-time.After(90 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatal("replicate run did not give up on a vanished target")
	}
	if st := replicaStatus(t, admin, p.dir, "off"); st.LastError == "" || st.PendingObjects == 0 {
		t.Fatalf("status after a failed pass: %+v", st)
	}

	off = startServer(t, off.dir, off.addr) // it comes back
	rep, se, code := replicaRun(t, admin, p.dir, "off")
	if code != 0 || len(rep.Failed) != 0 || rep.Sent == 0 {
		t.Fatalf("pass after the target came back: exit %d, %+v\n%s", code, rep, se)
	}
	if st := replicaStatus(t, admin, p.dir, "off"); st.PendingObjects != 0 || st.LastError != "" || st.LastSuccess == nil {
		t.Fatalf("status after the resumed pass: %+v", st)
	}
	if rep, se, code := replicaRun(t, admin, p.dir, "off", "--read-back"); code != 0 || rep.Sent != 0 || rep.Verified == 0 {
		t.Fatalf("a pass with nothing new and read-back: exit %d, %+v\n%s", code, rep, se)
	}

	p.kill() // the primary is gone
	rescue := newEnv(t)
	rescue.extra = []string{"COFFER_IDENTITY=" + filepath.Join(p.dir, "replicate", "off")}
	dst := filepath.Join(rescue.dir, "dst")
	repo := off.url("web1--home")
	rescue.must("restore", "latest", "--repo", repo, "--target", dst, "--verify")
	if got, err := os.ReadFile(filepath.Join(dst, src, "data")); err != nil || string(got) != string(data) {
		t.Fatalf("restored from the second server: %d bytes, %v", len(got), err)
	}
}

// TestSeedExportImport ships a seed to the offsite server: a tampered
// seed is refused naming the object, a sound one is imported, and the
// first pass afterwards sends only what changed since the export.
func TestSeedExportImport(t *testing.T) {
	t.Parallel()
	admin := newEnv(t)
	p, host, src := primaryWithBackup(t, admin, map[string][]byte{"data": noise(5, 6<<20)})
	off := offsiteServer(t, admin, p.dir, "off")

	seed := filepath.Join(admin.dir, "seed")
	var exp seedJSON
	admin.mustJSON(&exp, "server", "seed", "export", "--dir", p.dir, "--to", seed, "--json")
	if exp.Objects == 0 || exp.Written != exp.Objects || exp.PublicKey != filepath.Join(p.dir, "seed.pub") {
		t.Fatalf("seed export: %+v", exp)
	}
	if fi, err := os.Stat(filepath.Join(p.dir, "seed.key")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("seed key: %v, %v", fi, err)
	}
	writeFile(t, filepath.Join(src, "later.txt"), []byte("after the export\n"))
	host.must("backup", "--repo", host.repo, src)

	off.kill() // import runs with the offsite server stopped
	pub := filepath.Join(admin.dir, "primary-seed.pub")
	b, err := os.ReadFile(exp.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, pub, b)

	// A tampered seed is refused whole, naming the object.
	bad := filepath.Join(admin.dir, "bad-seed")
	if out, err := exec.Command("cp", "-a", seed, bad).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
	pack := firstPack(t, filepath.Join(bad, "objects", "web1", "home", "data"))
	flipByte(t, pack)
	_, se, code := admin.run("server", "seed", "import", "--dir", off.dir, "--from", bad, "--public-key", pub, "--as", "primary-a")
	if code == 0 || !strings.Contains(se, "web1/home/data/"+filepath.Base(pack)) {
		t.Fatalf("import of a tampered seed: exit %d, does not name %s\n%s", code, filepath.Base(pack), se)
	}
	if _, err := os.Stat(filepath.Join(off.dir, "objects", "primary-a", "web1--home")); err == nil {
		t.Fatal("a refused seed stored objects")
	}
	// The wrong public key: refused before anything is read.
	other := filepath.Join(admin.dir, "other")
	admin.must("server", "init", "--dir", other)
	admin.must("server", "seed", "export", "--dir", other, "--to", filepath.Join(admin.dir, "empty-seed"))
	_, se, code = admin.run("server", "seed", "import", "--dir", off.dir, "--from", seed, "--public-key", filepath.Join(other, "seed.pub"), "--as", "primary-a")
	if code == 0 || !strings.Contains(se, "signature does not verify") {
		t.Fatalf("import with another server's key: exit %d\n%s", code, se)
	}

	var imp seedJSON
	admin.mustJSON(&imp, "server", "seed", "import", "--dir", off.dir, "--from", seed, "--public-key", pub, "--as", "primary-a", "--json")
	if imp.Objects != exp.Objects || imp.Written != exp.Objects {
		t.Fatalf("seed import: %+v (export %+v)", imp, exp)
	}
	// The quotas count what the seed brought.
	db, err := serverdb.Open(context.Background(), filepath.Join(off.dir, serverdb.DefaultFile))
	if err != nil {
		t.Fatal(err)
	}
	u, err := db.Usage(context.Background(), "primary-a")
	_ = db.Close()
	if err != nil || u.Objects != imp.Objects || u.Repos != 1 || u.Charged < imp.Bytes {
		t.Fatalf("usage after the import: %+v, %v (import %+v)", u, err, imp)
	}

	startServer(t, off.dir, off.addr)
	rep, se, code := replicaRun(t, admin, p.dir, "off")
	if code != 0 || rep.Adopted != exp.Objects || rep.Sent == 0 || rep.SentBytes > 1<<20 {
		t.Fatalf("first pass after the seed should send only what changed since the export (%d objects seeded): exit %d, %+v\n%s", exp.Objects, code, rep, se)
	}
}
