package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coffer-backup/coffer/internal/pki"
	"github.com/coffer-backup/coffer/internal/server/state"
	"github.com/coffer-backup/coffer/internal/serverdb"
)

// cofferServer is a real `coffer server run` process on 127.0.0.1.
type cofferServer struct {
	t    *testing.T
	dir  string
	addr string // 127.0.0.1:PORT

	cmd  *exec.Cmd
	done chan struct{}
	mu   sync.Mutex
	log  strings.Builder
}

var listeningRE = regexp.MustCompile(`msg="coffer server listening" addr=(\S+)`)

// serverInit runs `coffer server init` into a new directory.
func serverInit(t *testing.T, e *env, name string) string {
	t.Helper()
	dir := filepath.Join(e.dir, name)
	e.must("server", "init", "--dir", dir, "--listen", "127.0.0.1:0")
	return dir
}

// startServer runs `coffer server run` on listen (127.0.0.1:0 picks a free
// port), with extra flags, and waits until it accepts connections. It is killed when the test
// ends.
func startServer(t *testing.T, dir, listen string, extra ...string) *cofferServer {
	t.Helper()
	return startServerEnv(t, dir, listen, nil, extra...)
}

// startServerEnv is startServer with variables added to the server's
// environment (S3 credentials).
func startServerEnv(t *testing.T, dir, listen string, env []string, extra ...string) *cofferServer {
	t.Helper()
	s := &cofferServer{t: t, dir: dir, done: make(chan struct{})}
	s.cmd = exec.Command(cofferBin, append([]string{"server", "run", "--dir", dir, "--listen", listen}, extra...)...) // #nosec G204 -- the test's own binary
	s.cmd.Env = append([]string{"HOME=" + t.TempDir(), "PATH=" + os.Getenv("PATH")}, env...)
	stderr, err := s.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	addrc := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			s.mu.Lock()
			s.log.WriteString(line + "\n")
			s.mu.Unlock()
			if m := listeningRE.FindStringSubmatch(line); m != nil {
				select {
				case addrc <- m[1]:
				default:
				}
			}
		}
		_, _ = io.Copy(io.Discard, stderr)
		_ = s.cmd.Wait()
		close(s.done)
	}()
	t.Cleanup(s.kill)
	select {
	case s.addr = <-addrc:
	case <-s.done:
		t.Fatalf("coffer server run exited before listening:\n%s", s.logText())
	case <-time.After(time.Minute): // generous: tests run in parallel
		t.Fatalf("coffer server run did not start:\n%s", s.logText())
	}
	return s
}

func (s *cofferServer) logText() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.log.String()
}

// kill ends the server with SIGKILL: no shutdown of any kind.
func (s *cofferServer) kill() {
	select {
	case <-s.done:
		return
	default:
	}
	_ = s.cmd.Process.Signal(syscall.SIGKILL)
	<-s.done
}

// stop ends the server with SIGTERM, as systemd does, and waits for it.
func (s *cofferServer) stop() {
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(20 * time.Second):
		s.t.Fatalf("coffer server run did not stop on SIGTERM:\n%s", s.logText())
	}
}

func (s *cofferServer) url(repo string) string { return "coffer://" + s.addr + "/" + repo }

// events reads the server's audit log straight from its database, as a
// second process would.
func (s *cofferServer) events(action string) []serverdb.Event {
	s.t.Helper()
	db, err := state.OpenDB(context.Background(), s.dir)
	if err != nil {
		s.t.Fatal(err)
	}
	defer db.Close()
	evs, err := db.Events(context.Background(), time.Time{}, 0)
	if err != nil {
		s.t.Fatal(err)
	}
	var out []serverdb.Event
	for _, e := range evs {
		if e.Action == action {
			out = append(out, e)
		}
	}
	return out
}

// token issues a one-time token with `coffer server token`.
func (s *cofferServer) token(admin *env, client string, extra ...string) string {
	s.t.Helper()
	out := admin.must(append([]string{"server", "token", "--dir", s.dir, "--client", client}, extra...)...)
	tok := strings.TrimSpace(out)
	if !strings.HasPrefix(tok, pki.TokenPrefix) || strings.Contains(tok, "\n") {
		s.t.Fatalf("server token printed %q", out)
	}
	return tok
}

// enroll enrolls e as client with a fresh token, through a token file.
func (s *cofferServer) enroll(admin, e *env, client string) {
	s.t.Helper()
	file := filepath.Join(e.dir, client+".token")
	writeFile(s.t, file, []byte(s.token(admin, client)+"\n"))
	e.must("enroll", "--server", s.addr, "--token-file", file)
}

func snapshotCount(t *testing.T, e *env, repo string) int {
	t.Helper()
	var snaps []snapshotJSON
	out := e.must("snapshots", "--repo", repo, "--json")
	if err := json.Unmarshal([]byte(out), &snaps); err != nil {
		t.Fatalf("snapshots --json: %v\n%s", err, out)
	}
	return len(snaps)
}

// within retries fn every 100 ms until it returns true or d has passed.
func within(d time.Duration, fn func() bool) bool {
	deadline := time.Now().Add(d)
	for {
		if fn() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestServerEndToEnd drives a real server and real clients through
// enrollment, every repository command, isolation, append-only, a rogue
// server and revocation.
func TestServerEndToEnd(t *testing.T) {
	t.Parallel()
	admin := newEnv(t)
	dir := serverInit(t, admin, "server")
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("state directory mode: %v %v", fi.Mode(), err)
	}
	srv := startServer(t, dir, "127.0.0.1:0")

	// Enrollment writes the identity with the documented modes.
	alice := newEnv(t)
	srv.enroll(admin, alice, "alice")
	idDir := filepath.Join(alice.dir, ".config", "coffer", "identity")
	for name, mode := range map[string]os.FileMode{"client.key": 0o600, "client.crt": 0o644, "ca.crt": 0o644} {
		if fi, err := os.Stat(filepath.Join(idDir, name)); err != nil || fi.Mode().Perm() != mode {
			t.Errorf("%s: %v %v", name, fi.Mode(), err)
		}
	}

	t.Run("tokens", func(t *testing.T) {
		other := newEnv(t)
		tok := srv.token(admin, "mallory")
		other.extra = []string{"COFFER_TOKEN=" + tok}
		other.must("enroll", "--server", srv.addr)
		// Reuse of the same token.
		_, se, code := other.run("enroll", "--server", srv.addr, "--identity", filepath.Join(other.dir, "id2"))
		if code == 0 || !strings.Contains(se, "already used") {
			t.Errorf("reused token: exit %d: %s", code, se)
		}
		// An expired token.
		other.extra = []string{"COFFER_TOKEN=" + srv.token(admin, "mallory", "--ttl", "1s", "--replace")}
		time.Sleep(1100 * time.Millisecond)
		_, se, code = other.run("enroll", "--server", srv.addr, "--identity", filepath.Join(other.dir, "id3"))
		if code == 0 || !strings.Contains(se, "expired") {
			t.Errorf("expired token: exit %d: %s", code, se)
		}
		// A token whose CA fingerprint is not this server's: refused before
		// anything is sent, so the server records no enrollment attempt.
		good := srv.token(admin, "mallory", "--replace")
		tk, err := pki.ParseToken(good)
		if err != nil {
			t.Fatal(err)
		}
		tk.CAFingerprint[7] ^= 0x40
		forged, err := tk.Encode()
		if err != nil {
			t.Fatal(err)
		}
		refusedBefore := len(srv.events(serverdb.ActionEnrollRefused))
		other.extra = []string{"COFFER_TOKEN=" + forged}
		_, se, code = other.run("enroll", "--server", srv.addr, "--identity", filepath.Join(other.dir, "id4"))
		if code == 0 || !strings.Contains(se, "nothing was sent") {
			t.Errorf("forged fingerprint: exit %d: %s", code, se)
		}
		if n := len(srv.events(serverdb.ActionEnrollRefused)); n != refusedBefore {
			t.Errorf("the server saw %d enrollment requests from a client that should have stopped", n-refusedBefore)
		}
		if _, err := os.Stat(filepath.Join(other.dir, "id4")); err == nil {
			t.Error("a refused enrollment wrote an identity")
		}
		// The genuine token was not spent by that attempt.
		other.extra = []string{"COFFER_TOKEN=" + good}
		other.must("enroll", "--server", srv.addr, "--identity", filepath.Join(other.dir, "id5"))
		// A token in argv works, with a warning.
		_, se, _ = other.run("enroll", "--server", srv.addr, "--identity", filepath.Join(other.dir, "id6"), "--token", good)
		if !strings.Contains(se, "warning: --token") {
			t.Errorf("no warning for a token in argv: %s", se)
		}
	})

	// Every repository command works on coffer:// exactly as on a path.
	repo := srv.url("repo")
	src := filepath.Join(alice.dir, "src")
	randomTree(t, src, 12, 200<<10)
	writeFile(t, filepath.Join(src, "small.txt"), []byte("hello\n"))
	writeFile(t, filepath.Join(src, "empty"), nil)
	if err := os.Symlink("small.txt", filepath.Join(src, "link")); err != nil {
		t.Fatal(err)
	}
	alice.must(append([]string{"init", "--repo", repo}, cheapKDF...)...)
	alice.must("backup", "--repo", repo, src)
	dst := filepath.Join(alice.dir, "dst")
	alice.must("restore", "latest", "--repo", repo, "--target", dst, "--verify")
	diffTrees(t, src, filepath.Join(dst, src))
	alice.must("check", "--repo", repo, "--read-data")
	if n := snapshotCount(t, alice, repo); n != 1 {
		t.Fatalf("%d snapshots", n)
	}

	t.Run("isolation", func(t *testing.T) {
		bob := newEnv(t)
		srv.enroll(admin, bob, "bob")
		if _, se, code := bob.run("snapshots", "--repo", repo); code != 10 {
			t.Fatalf("bob opened alice's repository: exit %d: %s", code, se)
		}
		// The same name is bob's own, separate repository.
		bob.must(append([]string{"init", "--repo", repo}, cheapKDF...)...)
		if n := snapshotCount(t, bob, repo); n != 0 {
			t.Fatalf("bob sees %d snapshots", n)
		}
		if n := snapshotCount(t, alice, repo); n != 1 {
			t.Fatalf("alice sees %d snapshots after bob's init", n)
		}
	})

	t.Run("append-only", func(t *testing.T) {
		writeFile(t, filepath.Join(src, "second.txt"), []byte("second backup\n"))
		alice.must("backup", "--repo", repo, src)
		_, se, code := alice.run("forget", "--repo", repo, "--keep-last", "1", "--prune")
		if code == 0 || !strings.Contains(se, "append-only") {
			t.Fatalf("forget --prune on an append-only client: exit %d: %s", code, se)
		}
		if n := snapshotCount(t, alice, repo); n != 2 {
			t.Fatalf("a refused forget lost snapshots: %d left", n)
		}
		alice.must("check", "--repo", repo, "--read-data")
		if len(srv.events(serverdb.ActionDeleteRefused)) == 0 {
			t.Error("refused deletion not in the audit log")
		}

		out := admin.must("server", "client", "--dir", dir, "--client", "alice", "--allow-delete", "--json")
		if !strings.Contains(out, `"allow_delete": true`) {
			t.Fatalf("server client --allow-delete: %s", out)
		}
		var lastErr string
		if !within(5*time.Second, func() bool {
			_, se, code := alice.run("forget", "--repo", repo, "--keep-last", "1", "--prune")
			lastErr = se
			return code == 0
		}) {
			t.Fatalf("forget --prune after --allow-delete: %s", lastErr)
		}
		if n := snapshotCount(t, alice, repo); n != 1 {
			t.Fatalf("%d snapshots after forget", n)
		}
		alice.must("check", "--repo", repo, "--read-data")
		if len(srv.events(serverdb.ActionDelete)) == 0 {
			t.Error("deletions not in the audit log")
		}
		if out := admin.must("server", "client", "--dir", dir, "--client", "alice", "--no-allow-delete", "--quota", "10G"); !strings.Contains(out, "within its refresh interval") {
			t.Errorf("server client does not say when the change takes effect:\n%s", out)
		}
	})

	t.Run("clients", func(t *testing.T) {
		var clients []struct {
			Name         string     `json:"name"`
			CertNotAfter time.Time  `json:"cert_not_after"`
			LastContact  *time.Time `json:"last_contact"`
			AllowDelete  bool       `json:"allow_delete"`
			QuotaBytes   int64      `json:"quota_bytes"`
			Revoked      bool       `json:"revoked"`
		}
		ok := within(3*time.Second, func() bool {
			out := admin.must("server", "clients", "--dir", dir, "--json")
			if err := json.Unmarshal([]byte(out), &clients); err != nil {
				t.Fatalf("clients --json: %v\n%s", err, out)
			}
			return len(clients) > 0 && clients[0].LastContact != nil
		})
		if !ok || len(clients) != 3 || clients[0].Name != "alice" {
			t.Fatalf("clients: %+v", clients)
		}
		a := clients[0]
		if a.AllowDelete || a.QuotaBytes != 10<<30 || a.Revoked || a.CertNotAfter.Before(time.Now().Add(24*time.Hour)) {
			t.Fatalf("alice: %+v", a)
		}
		if out := admin.must("server", "clients", "--dir", dir); !strings.Contains(out, "alice") || !strings.Contains(out, "LAST CONTACT") {
			t.Fatalf("clients table: %s", out)
		}
	})

	t.Run("rogue server", func(t *testing.T) {
		rogueDir := serverInit(t, admin, "rogue")
		rogue := startServer(t, rogueDir, "127.0.0.1:0")
		_, se, code := alice.run("snapshots", "--repo", rogue.url("repo"))
		if code == 0 || !strings.Contains(se, "not from the CA this client enrolled with") {
			t.Fatalf("client talked to a rogue server: exit %d: %s", code, se)
		}
		rogue.kill()

		// A rogue directory whose key others can read does not start.
		if err := os.Chmod(filepath.Join(rogueDir, "ca.key"), 0o644); err != nil {
			t.Fatal(err)
		}
		_, se, code = admin.run("server", "run", "--dir", rogueDir, "--listen", "127.0.0.1:0")
		if code == 0 || !strings.Contains(se, filepath.Join(rogueDir, "ca.key")) || !strings.Contains(se, "chmod 600") {
			t.Fatalf("server started with a readable CA key: exit %d: %s", code, se)
		}
	})

	t.Run("revoke", func(t *testing.T) {
		admin.must("server", "revoke", "--dir", dir, "--client", "alice")
		revoked := time.Now()
		var se string
		if !within(5*time.Second, func() bool {
			var code int
			_, se, code = alice.run("snapshots", "--repo", repo)
			return code != 0
		}) {
			t.Fatal("revoked client still served after 5 s")
		}
		t.Logf("revocation effective after %v", time.Since(revoked).Round(time.Millisecond))
		// A command under way when the revocation arrived fails on its
		// next request; a new one in the handshake.
		if !strings.Contains(se, "refused this client's certificate") && !strings.Contains(se, "certificate revoked") {
			t.Errorf("revoked client's error does not say why: %s", se)
		}
		if _, se, code := alice.run("snapshots", "--repo", repo); code == 0 || !strings.Contains(se, "refused this client's certificate") {
			t.Fatalf("revoked client: exit %d: %s", code, se)
		} else {
			t.Logf("revoked client: %s", se)
		}
	})

	t.Run("tls-report", func(t *testing.T) {
		var rep struct {
			Days []struct {
				Day     string         `json:"day"`
				Refused int            `json:"refused"`
				ByKind  map[string]int `json:"by_kind"`
			} `json:"days"`
			SelfScanExcluded int `json:"self_scan_excluded"`
		}
		// The forged-token client and the revoked client were refused; the
		// server's own start-up scan is not counted. The server writes its
		// refusal log once a second.
		var out string
		ok := within(5*time.Second, func() bool {
			out = admin.must("server", "tls-report", "--dir", dir, "--days", "2", "--json")
			if err := json.Unmarshal([]byte(out), &rep); err != nil {
				t.Fatalf("tls-report --json: %v\n%s", err, out)
			}
			today := rep.Days[len(rep.Days)-1]
			return len(rep.Days) == 2 && today.Refused > 0 && today.ByKind["rejected"] > 0 && rep.SelfScanExcluded > 0
		})
		if !ok {
			t.Fatalf("tls-report: %s", out)
		}
		if !strings.Contains(srv.logText(), "TLS self-audit passed") {
			t.Errorf("no self-audit in the server log:\n%s", srv.logText())
		}
	})
}

// TestServerKilledMidBackup kills the server with SIGKILL while a backup
// uploads, restarts it on the same port, and finds nothing partial: the
// repository checks, scrub finds no damage, and the next backup works. The
// server issues two-minute certificates here, so the client renews its
// certificate on every command.
func TestServerKilledMidBackup(t *testing.T) {
	t.Parallel()
	admin := newEnv(t)
	dir := serverInit(t, admin, "server")
	cfgPath := filepath.Join(dir, "config.json")
	cfg, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	cfg = []byte(strings.Replace(string(cfg), `"client_cert_ttl": "2160h0m0s"`, `"client_cert_ttl": "2m"`, 1))
	if err := os.WriteFile(cfgPath, cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	srv := startServer(t, dir, "127.0.0.1:0")
	carol := newEnv(t)
	srv.enroll(admin, carol, "carol")
	certPath := filepath.Join(carol.dir, ".config", "coffer", "identity", "client.crt")
	certBefore, _ := os.ReadFile(certPath)

	repo := srv.url("repo")
	_, se, code := carol.run(append([]string{"init", "--repo", repo}, cheapKDF...)...)
	if code != 0 || !strings.Contains(se, "renewed the client certificate") {
		t.Fatalf("init with a certificate due for renewal: exit %d: %s", code, se)
	}
	if certAfter, _ := os.ReadFile(certPath); string(certAfter) == string(certBefore) {
		t.Fatal("client.crt unchanged after renewal")
	}
	if len(srv.events(serverdb.ActionRenew)) != 1 {
		t.Fatal("renewal not recorded")
	}

	src := filepath.Join(carol.dir, "src")
	randomTree(t, src, 48, 1<<20)
	backup := exec.Command(cofferBin, "backup", "--repo", repo, src) // #nosec G204 -- the test's own binary
	backup.Env = carol.environ(testPass)
	var out strings.Builder
	backup.Stdout, backup.Stderr = &out, &out
	if err := backup.Start(); err != nil {
		t.Fatal(err)
	}
	// Kill the server once the backup has stored some data.
	dataDir := filepath.Join(dir, "objects", "carol", "repo", "data")
	if !within(20*time.Second, func() bool {
		n := 0
		_ = filepath.WalkDir(dataDir, func(_ string, d os.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				n++
			}
			return nil
		})
		return n > 0
	}) {
		t.Fatalf("backup stored nothing:\n%s", out.String())
	}
	addr := srv.addr
	srv.kill()
	restarted := startServer(t, dir, addr)
	// Whether the backup's retries reached the restarted server or it gave
	// up, nothing it left may be partial.
	backupErr := backup.Wait()
	t.Logf("backup across the server's death: %v\n%s", backupErr, out.String())

	carol.must("check", "--repo", restarted.url("repo"), "--read-data")
	admin.must("server", "scrub", "--dir", dir)
	carol.must("backup", "--repo", restarted.url("repo"), src)
	carol.must("check", "--repo", restarted.url("repo"), "--read-data")
	dst := filepath.Join(carol.dir, "dst")
	carol.must("restore", "latest", "--repo", restarted.url("repo"), "--target", dst)
	diffTrees(t, src, filepath.Join(dst, src))

	// Bit rot on the server is found by scrub, naming the object.
	// The largest stored object, flipped in its middle: a small pack may be
	// shorter than any fixed offset.
	var victim string
	var victimSize int64
	_ = filepath.WalkDir(dataDir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		if fi, err := d.Info(); err == nil && fi.Size() > victimSize {
			victim, victimSize = p, fi.Size()
		}
		return nil
	})
	if victim == "" {
		t.Fatal("no stored object found")
	}
	f, err := os.OpenFile(victim, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, victimSize/2); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 1
	if _, err := f.WriteAt(b, victimSize/2); err != nil {
		t.Fatal(err)
	}
	f.Close()
	so, _, code := admin.run("server", "scrub", "--dir", dir)
	if code == 0 || !strings.Contains(so, "DAMAGED") || !strings.Contains(so, filepath.Base(victim)) {
		t.Fatalf("scrub missed bit rot: exit %d: %s", code, so)
	}
}

// TestPackagingSystemdUnit checks the systemd unit with systemd-analyze,
// when it is installed: it parses cleanly and its exposure stays low.
func TestPackagingSystemdUnit(t *testing.T) {
	t.Parallel()
	sa, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze not installed")
	}
	unit, err := os.ReadFile(filepath.Join("..", "..", "packaging", "systemd", "coffer-server.service"))
	if err != nil {
		t.Fatal(err)
	}
	const execPath = "/usr/libexec/coffer/coffer-server"
	if !strings.Contains(string(unit), "ExecStart="+execPath+" server run --dir /var/lib/coffer") {
		t.Fatal("unexpected ExecStart")
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "coffer-server.service")
	writeFile(t, path, []byte(strings.ReplaceAll(string(unit), execPath, cofferBin)))
	out, err := exec.Command(sa, "verify", path).CombinedOutput() // #nosec G204 -- fixed tool and a test file
	if err != nil || len(strings.TrimSpace(string(out))) != 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
	out, err = exec.Command(sa, "security", "--offline=yes", "--threshold=20", path).CombinedOutput() // #nosec G204 -- fixed tool and a test file
	if strings.Contains(string(out), "unrecognized option") {
		t.Skip("systemd-analyze security --offline not supported")
	}
	if err != nil {
		t.Fatalf("systemd-analyze security: exposure above 2.0: %v\n%s", err, out)
	}
	for _, want := range []string{"NoNewPrivileges=yes", "ProtectSystem=strict", "ReadWritePaths=/var/lib/coffer", "CapabilityBoundingSet=\n", "User=coffer"} {
		if !strings.Contains(string(unit), want) {
			t.Errorf("unit lacks %q", strings.TrimSpace(want))
		}
	}
	t.Log(lastLine(string(out)))
}

// TestPackagingSELinuxModule builds the SELinux policy module, when the
// reference policy's development files are installed.
func TestPackagingSELinuxModule(t *testing.T) {
	t.Parallel()
	const makefile = "/usr/share/selinux/devel/Makefile"
	if _, err := os.Stat(makefile); err != nil {
		t.Skip("SELinux policy development files not installed")
	}
	dir := t.TempDir()
	for _, ext := range []string{"te", "fc", "if"} {
		b, err := os.ReadFile(filepath.Join("..", "..", "packaging", "selinux", "coffer_server."+ext))
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(dir, "coffer_server."+ext), b)
	}
	cmd := exec.Command("make", "-f", makefile, "coffer_server.pp") // #nosec G204 -- fixed arguments
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building the SELinux module: %v\n%s", err, out)
	}
	if fi, err := os.Stat(filepath.Join(dir, "coffer_server.pp")); err != nil || fi.Size() == 0 {
		t.Fatalf("no module built: %v", err)
	}
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return fmt.Sprint(lines[len(lines)-1])
}

var fingerprintRE = regexp.MustCompile(`(?:[0-9A-F]{2}:){31}[0-9A-F]{2}`)

// server init, enroll and tls scan print the server's CA fingerprint in
// one form, the SHA-256 of its public key that tokens carry.
func TestOneCAFingerprint(t *testing.T) {
	t.Parallel()
	admin := newEnv(t)
	dir := filepath.Join(admin.dir, "server")
	out := admin.must("server", "init", "--dir", dir, "--listen", "127.0.0.1:0")
	want := fingerprintRE.FindString(out)
	if want == "" {
		t.Fatalf("server init printed no fingerprint:\n%s", out)
	}
	ca, err := pki.LoadCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	if fp := pki.FormatFingerprint(ca.Fingerprint()); fp != want {
		t.Fatalf("server init printed %s, the CA's is %s", want, fp)
	}
	srv := startServer(t, dir, "127.0.0.1:0")
	alice := newEnv(t)
	file := filepath.Join(alice.dir, "alice.token")
	writeFile(t, file, []byte(srv.token(admin, "alice")+"\n"))
	if got := fingerprintRE.FindString(alice.must("enroll", "--server", srv.addr, "--token-file", file)); got != want {
		t.Errorf("enroll printed %q, server init %s", got, want)
	}
	scan, _, _ := alice.run("tls", "scan", srv.addr)
	if !regexp.MustCompile(`fingerprint\s+` + want).MatchString(scan) {
		t.Errorf("tls scan does not show the CA fingerprint %s:\n%s", want, scan)
	}
}
