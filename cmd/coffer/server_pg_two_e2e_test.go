package main

import (
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coffer-backup/coffer/internal/alert/mailpittest"
	"github.com/coffer-backup/coffer/internal/serverdb"
	"github.com/coffer-backup/coffer/internal/serverdb/pgtest"
	"github.com/coffer-backup/coffer/internal/storage/s3/s3test"
)

// TestTwoServersOneDatabase runs two real `coffer server run` processes
// from copies of one state directory, sharing one PostgreSQL database and
// one S3 bucket: a backup made through A restores through B; a token is
// redeemed once across both, also when both redeem it at the same moment;
// a client revoked through A's CLI is refused by B within a bound;
// append-only holds at both; and the audit log keeps one chain: A writes
// it, B's entries and events reach it, nothing is appended while no
// server can write at the head (B raises audit-log-stopped, mailed
// through mailpit), and `server audit verify` passes.
func TestTwoServersOneDatabase(t *testing.T) {
	t.Parallel()
	pg := pgtest.Start(t)
	bucket := s3test.Start(t)
	admin := newEnv(t)
	admin.extra = bucket.Env()
	url := pg.URL(pg.NewDatabase(t))
	dirA := filepath.Join(admin.dir, "a")
	admin.must("server", "init", "--dir", dirA, "--listen", "127.0.0.1:0", "--db", url, "--db-password-file", pg.PasswordFile,
		"--storage", bucket.URL("coffer", "fleet"))
	dirB := filepath.Join(admin.dir, "b")
	if out, err := exec.Command("cp", "-a", dirA, dirB).CombinedOutput(); err != nil {
		t.Fatalf("copy the state directory: %v %s", err, out)
	}
	const takeover = time.Second
	a := startServerEnv(t, dirA, "127.0.0.1:0", bucket.Env(), "--audit-takeover", takeover.String())
	b := startServerEnv(t, dirB, "127.0.0.1:0", bucket.Env(), "--audit-takeover", takeover.String())
	if !strings.Contains(b.logText(), "another server sharing the database writes it") {
		t.Fatalf("B does not say that A writes the audit log:\n%s", b.logText())
	}

	// A backup through A restores through B.
	alice := newEnv(t)
	a.enroll(admin, alice, "alice")
	src := filepath.Join(alice.dir, "src")
	randomTree(t, src, 4, 64<<10)
	alice.must(append([]string{"init", "--repo", a.url("r")}, cheapKDF...)...)
	alice.must("backup", "--repo", a.url("r"), src)
	dst := filepath.Join(alice.dir, "dst")
	alice.must("restore", "latest", "--repo", b.url("r"), "--target", dst, "--verify")
	diffTrees(t, src, filepath.Join(dst, src))

	t.Run("tokens", func(t *testing.T) {
		// Issued through B's CLI, redeemed at A, refused at B.
		tok := b.token(admin, "carol")
		carol := newEnv(t)
		carol.extra = []string{"COFFER_TOKEN=" + tok}
		carol.must("enroll", "--server", a.addr)
		_, se, code := carol.run("enroll", "--server", b.addr, "--identity", filepath.Join(carol.dir, "id2"))
		if code == 0 || !strings.Contains(se, "already used") {
			t.Fatalf("a token redeemed at A, again at B: exit %d: %s", code, se)
		}
		// Redeemed at both at once: exactly one wins.
		for round := range 3 {
			tok := a.token(admin, "dave", "--replace")
			var wg sync.WaitGroup
			codes := make([]int, 2)
			for i, srv := range []*cofferServer{a, b} {
				wg.Add(1)
				go func() {
					defer wg.Done()
					e := newEnv(t)
					e.extra = []string{"COFFER_TOKEN=" + tok}
					_, _, codes[i] = e.run("enroll", "--server", srv.addr)
				}()
			}
			wg.Wait()
			if (codes[0] == 0) == (codes[1] == 0) {
				t.Fatalf("round %d: exits %v at A and B, want exactly one success", round, codes)
			}
		}
	})

	t.Run("append-only", func(t *testing.T) {
		writeFile(t, filepath.Join(src, "second"), []byte("second\n"))
		alice.must("backup", "--repo", b.url("r"), src)
		for _, srv := range []*cofferServer{a, b} {
			_, se, code := alice.run("forget", "--repo", srv.url("r"), "--keep-last", "1", "--prune")
			if code == 0 || !strings.Contains(se, "append-only") {
				t.Fatalf("forget --prune through %s: exit %d: %s", srv.addr, code, se)
			}
			if n := snapshotCount(t, alice, srv.url("r")); n != 2 {
				t.Fatalf("%d snapshots through %s after a refused forget", n, srv.addr)
			}
		}
	})

	t.Run("revocation", func(t *testing.T) {
		erin := newEnv(t)
		b.enroll(admin, erin, "erin")
		erin.must(append([]string{"init", "--repo", b.url("e")}, cheapKDF...)...)
		erin.must("snapshots", "--repo", b.url("e"))
		admin.must("server", "revoke", "--dir", dirA, "--client", "erin")
		start := time.Now()
		var se string
		refused := within(10*time.Second, func() bool {
			var code int
			_, se, code = erin.run("snapshots", "--repo", b.url("e"))
			return code != 0
		})
		took := time.Since(start)
		if !refused {
			t.Fatal("B still serves a client revoked through A after 10 s")
		}
		// B reloads revocations every second (server.DefaultRefreshInterval).
		if took > 5*time.Second {
			t.Fatalf("B refused the revoked client after %v, want within 5 s", took)
		}
		if !strings.Contains(se, "revoked") {
			t.Fatalf("B refused the revoked client, but not for its revocation: %s", se)
		}
		t.Logf("B refused the client revoked through A after %v", took.Round(10*time.Millisecond))
	})

	// A fleet change through B is recorded by A's log.
	mustFleet(admin, b, filepath.Join(dirA, "admin"), "user", "add", "frank", "--role", "auditor")
	// Reading the log through the API: B, whose copy is behind, refuses
	// and names why; A answers with everything committed before the
	// request, B's forwarded entry included, without waiting for a poll.
	if _, se, code := fleetAs(admin, b, filepath.Join(dirA, "admin"), "audit"); code == 0 || !strings.Contains(se, "does not write the audit log") {
		t.Fatalf("fleet audit through B, which does not write the log: exit %d: %s", code, se)
	}
	if out := mustFleet(admin, a, filepath.Join(dirA, "admin"), "audit"); !strings.Contains(out, "user:frank") {
		t.Fatalf("fleet audit through A lacks the change made through B:\n%s", out)
	}

	// No server at the head: A is killed, B cannot take over (its log is
	// not at the head) and raises the audit-log-stopped alert, and an
	// enrollment through B waits in the database until A is back.
	mp := mailpittest.Start(t, mailpittest.Options{})
	mustFleet(admin, a, filepath.Join(dirA, "admin"), "alert", "add", "email", "--name", "ops", "--smtp", mp.SMTP,
		"--from", "coffer@example.org", "--to", "ops@example.org", "--events", "audit-log-stopped")
	a.kill()
	grace := newEnv(t)
	b.enroll(admin, grace, "grace")
	time.Sleep(3 * takeover)
	if !strings.Contains(b.logText(), "no server writes the audit log, and this one cannot") {
		t.Fatalf("B took over an audit log it does not have:\n%s", b.logText())
	}
	if _, ok := mp.Find(t, 30*time.Second, func(m mailpittest.Message) bool {
		return strings.Contains(m.Subject, "audit log stopped") && strings.Contains(m.Text, "chain head")
	}); !ok {
		t.Fatalf("no audit-log-stopped mail from B; server log:\n%s", b.logText())
	}
	a = startServerEnv(t, dirA, "127.0.0.1:0", bucket.Env(), "--audit-takeover", takeover.String())
	wantLog := []string{"client:grace", "client:carol", "frank", "client:erin"}
	if !within(20*time.Second, func() bool {
		out := admin.must("server", "audit", "show", "--dir", dirA)
		for _, w := range wantLog {
			if !strings.Contains(out, w) {
				return false
			}
		}
		return true
	}) {
		t.Fatalf("A's audit log lacks some of %v:\n%s", wantLog, admin.must("server", "audit", "show", "--dir", dirA))
	}
	// The fleet's entry of that change came from B through the database.
	if n := len(b.events(serverdb.ActionAuditEntry)); n == 0 {
		t.Fatal("B forwarded no audit entry through the database")
	}
	forwarded := false
	for _, line := range strings.Split(admin.must("server", "audit", "show", "--dir", dirA), "\n") {
		forwarded = forwarded || strings.Contains(line, "admin/admin") && strings.Contains(line, "user:frank")
	}
	if !forwarded {
		t.Fatal("A's audit log lacks the fleet's entry of the change made through B")
	}
	a.stop()
	b.stop()
	admin.must("server", "audit", "verify", "--dir", dirA)
	if _, _, code := admin.run("server", "audit", "verify", "--dir", dirB); code == 0 {
		t.Fatal("B's own audit directory verifies against the shared head: B wrote to the chain")
	}
}
