package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coffer-backup/coffer/internal/pki"
	"github.com/coffer-backup/coffer/internal/tlspolicy"
)

// Issue 10, item 15: coffer server run checks every file and directory of
// its state tree, and names the path and the chmod that fixes it.
func TestServerRefusesInsecureStateTree(t *testing.T) {
	t.Parallel()
	admin := newEnv(t)
	dir := serverInit(t, admin, "server")
	repoDir := filepath.Join(dir, "objects", "alice", "main", "data")
	if err := os.MkdirAll(repoDir, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		path string
		mode os.FileMode
		fix  string
	}{
		{filepath.Join(dir, "config.json"), 0o666, "chmod go-w "},
		{filepath.Join(dir, "objects"), 0o777, "chmod 700 "},
		{repoDir, 0o757, "chmod 700 "},
		{filepath.Join(dir, "state.db"), 0o644, "chmod 600 "},
	} {
		fi, err := os.Stat(c.path)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(c.path, c.mode); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		cmd := exec.CommandContext(ctx, cofferBin, "server", "run", "--dir", dir, "--listen", "127.0.0.1:0") // #nosec G204 -- the test's own binary
		cmd.Env = admin.environ("")
		out, err := cmd.CombinedOutput()
		started := ctx.Err() != nil
		cancel()
		if started {
			t.Fatalf("%s mode %04o: the server started", c.path, c.mode)
		}
		if err == nil || !strings.Contains(string(out), c.fix+c.path) || !strings.Contains(string(out), "refusing to start") {
			t.Errorf("%s mode %04o: %v\n%s", c.path, c.mode, err, out)
		}
		if err := os.Chmod(c.path, fi.Mode().Perm()); err != nil {
			t.Fatal(err)
		}
	}
	startServer(t, dir, "127.0.0.1:0") // and repaired, it starts
}

// Issue 10, item 16: a token whose client name was edited is refused
// without spending the genuine token; server token for an existing client
// needs --replace, which says what redeeming the token does.
func TestServerTokenEditedNameAndReplace(t *testing.T) {
	t.Parallel()
	admin := newEnv(t)
	srv := startServer(t, serverInit(t, admin, "server"), "127.0.0.1:0")
	good := srv.token(admin, "alice")
	tk, err := pki.ParseToken(good)
	if err != nil {
		t.Fatal(err)
	}
	tk.ClientName = "admin"
	edited, err := tk.Encode()
	if err != nil {
		t.Fatal(err)
	}
	alice := newEnv(t)
	alice.extra = []string{"COFFER_TOKEN=" + edited}
	if _, se, code := alice.run("enroll", "--server", srv.addr); code == 0 || !strings.Contains(se, "unknown enrollment token") {
		t.Fatalf("edited token: exit %d: %s", code, se)
	}
	alice.extra = []string{"COFFER_TOKEN=" + good}
	alice.must("enroll", "--server", srv.addr)

	// A token for the enrolled, active client needs --replace.
	_, se, code := admin.run("server", "token", "--dir", srv.dir, "--client", "alice")
	if code == 0 || !strings.Contains(se, "already enrolled") || !strings.Contains(se, "--replace") {
		t.Fatalf("token for an active client: exit %d: %s", code, se)
	}
	so, se, code := admin.run("server", "token", "--dir", srv.dir, "--client", "alice", "--replace")
	if code != 0 || !strings.HasPrefix(so, pki.TokenPrefix) || !strings.Contains(se, "revokes its current certificate") {
		t.Fatalf("token --replace: exit %d\n%s\n%s", code, so, se)
	}
	// Redeeming it replaces the old certificate, which is then refused.
	newAlice := newEnv(t)
	newAlice.extra = []string{"COFFER_TOKEN=" + strings.TrimSpace(so)}
	newAlice.must("enroll", "--server", srv.addr)
	newAlice.must(append([]string{"init", "--repo", srv.url("main")}, cheapKDF...)...)
	if !within(5*time.Second, func() bool {
		_, _, code := alice.run("snapshots", "--repo", srv.url("main"))
		return code != 0
	}) {
		t.Fatal("the replaced certificate still works")
	}

	// A revoked client needs --replace too, and is told it was revoked.
	admin.must("server", "revoke", "--dir", srv.dir, "--client", "alice")
	if _, se, code := admin.run("server", "token", "--dir", srv.dir, "--client", "alice"); code == 0 || !strings.Contains(se, "was revoked") {
		t.Fatalf("token for a revoked client: exit %d: %s", code, se)
	}
	if _, se, code := admin.run("server", "token", "--dir", srv.dir, "--client", "alice", "--replace"); code != 0 || !strings.Contains(se, "enables it again") {
		t.Fatalf("token --replace for a revoked client: exit %d: %s", code, se)
	}
}

// Issue 10, item 12: a flood of enrollment attempts from one address
// limits that address for a while; coffer enroll says so, waits as the
// server's Retry-After says and gets through once the flood stops.
func TestEnrollRetriesRateLimitedServer(t *testing.T) {
	t.Parallel()
	admin := newEnv(t)
	srv := startServer(t, serverInit(t, admin, "server"), "127.0.0.1:0")
	good := srv.token(admin, "alice")
	tk, err := pki.ParseToken(good)
	if err != nil {
		t.Fatal(err)
	}
	conf := tlspolicy.Default().EnrollmentConfig("127.0.0.1", pki.FingerprintVerifier("127.0.0.1", tk.CAFingerprint, time.Now))
	// The flood runs until coffer enroll reports the limit.
	stop := make(chan struct{})
	flooded := make(chan int, 1)
	go func() {
		limited := 0
		for {
			select {
			case <-stop:
				flooded <- limited
				return
			default:
			}
			if status, err := flood(srv.addr, conf); err == nil && status == http.StatusTooManyRequests {
				limited++
			}
		}
	}()
	var once sync.Once
	total := 0
	stopFlood := func() int {
		once.Do(func() {
			close(stop)
			total = <-flooded
		})
		return total
	}
	if !within(10*time.Second, func() bool { st, err := flood(srv.addr, conf); return err == nil && st == http.StatusTooManyRequests }) {
		stopFlood()
		t.Fatal("the flood was never limited")
	}

	alice := newEnv(t)
	alice.extra = []string{"COFFER_TOKEN=" + good}
	cmd := exec.Command(cofferBin, "enroll", "--server", srv.addr) // #nosec G204 -- the test's own binary
	cmd.Env = alice.environ("")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var log strings.Builder
	sc := bufio.NewScanner(stderr)
	for sc.Scan() {
		log.WriteString(sc.Text() + "\n")
		if strings.Contains(sc.Text(), "limiting enrollment attempts") {
			stopFlood()
		}
	}
	err = cmd.Wait()
	limited := stopFlood()
	if err != nil || !strings.Contains(log.String(), "limiting enrollment attempts") {
		t.Fatalf("enroll behind a rate limit (%d flood attempts limited): %v\n%s", limited, err, log.String())
	}
}

// flood sends one garbage enrollment request and returns the status.
func flood(addr string, conf *tls.Config) (int, error) {
	conn, err := tls.Dial("tcp", addr, conf)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /v1/enroll HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}")
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, nil
}
