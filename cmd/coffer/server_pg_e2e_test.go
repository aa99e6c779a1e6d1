package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coffer-backup/coffer/internal/server/state"
	"github.com/coffer-backup/coffer/internal/serverdb"
	"github.com/coffer-backup/coffer/internal/serverdb/pgtest"
)

// pgInit runs `coffer server init --db` against a fresh PostgreSQL
// database of the test's cluster, with its password from a file, and
// returns the state directory and the database URL.
func pgInit(t *testing.T, e *env, pg *pgtest.Server, name string) (string, string) {
	t.Helper()
	url := pg.URL(pg.NewDatabase(t))
	dir := filepath.Join(e.dir, name)
	e.must("server", "init", "--dir", dir, "--listen", "127.0.0.1:0", "--db", url, "--db-password-file", pg.PasswordFile)
	return dir, url
}

// firstBackup enrolls alice with srv, makes a repository on it and backs
// up a small random tree: the client, the repository URL and the tree.
func firstBackup(t *testing.T, srv *cofferServer, admin *env) (*env, string, string) {
	t.Helper()
	alice := newEnv(t)
	srv.enroll(admin, alice, "alice")
	repo := srv.url("repo")
	src := filepath.Join(alice.dir, "src")
	randomTree(t, src, 4, 64<<10)
	alice.must(append([]string{"init", "--repo", repo}, cheapKDF...)...)
	alice.must("backup", "--repo", repo, src)
	return alice, repo, src
}

// TestServerPostgres: server init --db keeps the URL in config.json and
// the password in db.password only; a URL with a password, a password
// file others can read and a second init against the same database are
// refused; a server on PostgreSQL enrolls, backs up and restores.
func TestServerPostgres(t *testing.T) {
	t.Parallel()
	pg := pgtest.Start(t)
	admin := newEnv(t)

	url := pg.URL(pg.NewDatabase(t))
	withPassword := strings.Replace(url, pgtest.User+"@", pgtest.User+":"+pg.Password+"@", 1)
	bad := filepath.Join(admin.dir, "bad")
	_, se, code := admin.run("server", "init", "--dir", bad, "--db", withPassword)
	if code != 2 || !strings.Contains(se, "password") || strings.Contains(se, pg.Password) {
		t.Fatalf("init with a password in the URL: exit %d: %s", code, se)
	}
	_, se, code = admin.run("server", "init", "--dir", bad, "--db", url+"&password="+pg.Password)
	if code != 2 || strings.Contains(se, pg.Password) {
		t.Fatalf("init with a password parameter: exit %d: %s", code, se)
	}
	loose := filepath.Join(admin.dir, "loose.password")
	writeFile(t, loose, []byte(pg.Password+"\n"))
	if err := os.Chmod(loose, 0o644); err != nil {
		t.Fatal(err)
	}
	_, se, code = admin.run("server", "init", "--dir", bad, "--db", url, "--db-password-file", loose)
	if code == 0 || !strings.Contains(se, "chmod 600") {
		t.Fatalf("init with a password file others can read: exit %d: %s", code, se)
	}
	if _, err := os.Stat(filepath.Join(bad, state.ConfigFile)); err == nil {
		t.Fatal("a refused init wrote a configuration")
	}

	dir, url := pgInit(t, admin, pg, "server")
	cfg, err := os.ReadFile(filepath.Join(dir, state.ConfigFile))
	if err != nil {
		t.Fatal(err)
	}
	var fc state.FileConfig
	if err := json.Unmarshal(cfg, &fc); err != nil || fc.Database != url || strings.Contains(string(cfg), pg.Password) {
		t.Fatalf("config.json: %v\n%s", err, cfg)
	}
	if fi, err := os.Stat(filepath.Join(dir, state.DBPasswordFile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("db.password: %v %v", fi, err)
	}
	if _, err := os.Stat(filepath.Join(dir, serverdb.DefaultFile)); err == nil {
		t.Fatal("a server on PostgreSQL made state.db")
	}
	// A second, independent init against the same database: refused.
	other := filepath.Join(admin.dir, "other")
	_, se, code = admin.run("server", "init", "--dir", other, "--listen", "127.0.0.1:0", "--db", url, "--db-password-file", pg.PasswordFile)
	if code == 0 || !strings.Contains(se, "another CA") {
		t.Fatalf("second init on one database: exit %d: %s", code, se)
	}

	srv := startServer(t, dir, "127.0.0.1:0")
	if strings.Contains(srv.logText(), pg.Password) {
		t.Fatal("the server logged the database password")
	}
	alice, repo, src := firstBackup(t, srv, admin)
	dst := filepath.Join(alice.dir, "dst")
	alice.must("restore", "latest", "--repo", repo, "--target", dst, "--verify")
	diffTrees(t, src, filepath.Join(dst, src))
	if n := len(srv.events(serverdb.ActionEnroll)); n < 1 {
		t.Fatalf("%d enrollment events in PostgreSQL", n)
	}
	out := admin.must("server", "clients", "--dir", dir)
	if !strings.Contains(out, "alice") {
		t.Fatalf("server clients on PostgreSQL:\n%s", out)
	}
}

// TestServerPostgresOutage: PostgreSQL goes away under a running server
// and comes back. Meanwhile the server stays up, and a backup that needs
// the database is refused as unavailable (503, retried by the client,
// then a clear error naming the database), never as unauthenticated or a
// bare internal error, and without the database's address or user.
// Once PostgreSQL is back the same server serves
// again without a restart, and nothing committed before is lost.
func TestServerPostgresOutage(t *testing.T) {
	t.Parallel()
	pg := pgtest.StartOwn(t)
	admin := newEnv(t)
	dir, _ := pgInit(t, admin, pg, "server")
	srv := startServer(t, dir, "127.0.0.1:0")
	alice, repo, src := firstBackup(t, srv, admin)

	pg.Halt(t)
	randomTree(t, filepath.Join(src, "more"), 2, 32<<10)
	_, se, code := alice.run("backup", "--repo", repo, src)
	if code == 0 || !strings.Contains(se, "state database cannot be reached") || strings.Contains(se, "unauthenticated") ||
		strings.Contains(se, "user=") || strings.Contains(se, "dial") {
		t.Fatalf("backup while PostgreSQL is down: exit %d:\n%s", code, se)
	}
	select {
	case <-srv.done:
		t.Fatalf("the server exited when PostgreSQL went away:\n%s", srv.logText())
	default:
	}
	if !strings.Contains(srv.logText(), "state database cannot be reached") {
		t.Fatalf("the server's log does not say why it refused:\n%s", srv.logText())
	}

	pg.Resume(t)
	deadline := time.Now().Add(time.Minute)
	for {
		_, se, code = alice.run("backup", "--repo", repo, src)
		if code == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("backup a minute after PostgreSQL came back: exit %d:\n%s\nserver log:\n%s", code, se, srv.logText())
		}
		time.Sleep(time.Second)
	}
	alice.must("check", "--repo", repo)
	out := alice.must("snapshots", "--repo", repo, "--json")
	var snaps []json.RawMessage
	if err := json.Unmarshal([]byte(out), &snaps); err != nil || len(snaps) != 2 {
		t.Fatalf("snapshots after the outage: %v\n%s", err, out)
	}
	dst := filepath.Join(alice.dir, "dst")
	alice.must("restore", "latest", "--repo", repo, "--target", dst, "--verify")
	diffTrees(t, src, filepath.Join(dst, src))
	// The audit log's head, which could not be stored while PostgreSQL
	// was away, is stored again by the running server: verify passes
	// (retried, as an append and its head store may straddle a read).
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(500 * time.Millisecond) {
		_, se, code := admin.run("server", "audit", "verify", "--dir", dir)
		if code == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("server audit verify after the outage: exit %d: %s\nserver log:\n%s", code, se, srv.logText())
		}
	}
}
