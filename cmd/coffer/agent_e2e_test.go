package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coffer-backup/coffer/internal/agent"
	"github.com/coffer-backup/coffer/internal/fleet/policy"
	"github.com/coffer-backup/coffer/internal/serverdb"
)

// agentProc is a real `coffer agent run` process.
type agentProc struct {
	cmd  *exec.Cmd
	done chan struct{}
	mu   sync.Mutex
	log  bytes.Buffer
	code int
}

func startAgentProc(t *testing.T, e *env, args ...string) *agentProc {
	t.Helper()
	p := &agentProc{done: make(chan struct{})}
	p.cmd = exec.Command(cofferBin, append([]string{"agent", "run"}, args...)...) // #nosec G204 -- the test's own binary
	p.cmd.Env = e.environ("")
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			p.mu.Lock()
			p.log.WriteString(sc.Text() + "\n")
			p.mu.Unlock()
		}
		_, _ = io.Copy(io.Discard, stderr)
		_ = p.cmd.Wait()
		p.code = p.cmd.ProcessState.ExitCode()
		close(p.done)
	}()
	t.Cleanup(func() {
		_ = p.cmd.Process.Signal(syscall.SIGKILL)
		<-p.done
		if t.Failed() {
			t.Logf("agent log:\n%s", p.logText())
		}
	})
	return p
}

func (p *agentProc) logText() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.log.String()
}

// stop sends SIGTERM and returns how long the agent took to exit.
func (p *agentProc) stop(t *testing.T) time.Duration {
	t.Helper()
	start := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		t.Fatal("the agent did not exit after SIGTERM")
	}
	return time.Since(start)
}

// fleetIdentity enrolls e as client with the real server, then adds what
// a fleet server's enrollment adds: the server address and a policy key.
// It returns the identity directory and the policy signing key.
func fleetIdentity(t *testing.T, s *cofferServer, admin, e *env, client string) (string, ed25519.PrivateKey) {
	t.Helper()
	s.enroll(admin, e, client)
	id := filepath.Join(e.dir, ".config", "coffer", "identity")
	if err := agent.WriteServer(id, s.addr); err != nil {
		t.Fatal(err)
	}
	keys := t.TempDir()
	priv, err := policy.GenerateKey(keys)
	if err != nil {
		t.Fatal(err)
	}
	if err := policy.WritePublicKey(id, priv.Public().(ed25519.PublicKey)); err != nil {
		t.Fatal(err)
	}
	return id, priv
}

func signedPolicy(t *testing.T, priv ed25519.PrivateKey, p *policy.Policy) []byte {
	t.Helper()
	b, err := policy.Sign(priv, p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// serverJobs reads a host's jobs from the server's database, as a second
// process would.
func serverJobs(t *testing.T, dir string, f serverdb.JobFilter) []serverdb.Job {
	t.Helper()
	db, err := serverdb.Open(context.Background(), filepath.Join(dir, serverdb.DefaultFile))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	jobs, err := db.Jobs(context.Background(), f)
	if err != nil {
		t.Fatal(err)
	}
	return jobs
}

// TestAgentEndToEnd runs a real agent against a real server: its `every
// 10s` policy backs up into the default repository on the server (created
// by the agent with its host key, which opens it by hand) and into a local
// one, and the server's job history shows the scheduled backups; with the
// server stopped the agent keeps backing up to the local repository and
// delivers those reports when the server is back; SIGTERM stops it within
// a second, exit status 0, no lock left.
func TestAgentEndToEnd(t *testing.T) {
	t.Parallel()
	admin := newEnv(t)
	srv := startServer(t, serverInit(t, admin, "srv"), "127.0.0.1:0")
	e := newEnv(t)
	id, priv := fleetIdentity(t, srv, admin, e, "host1")
	src := filepath.Join(e.dir, "src")
	writeFile(t, filepath.Join(src, "a.txt"), []byte("agent data"))
	local := filepath.Join(e.dir, "local-repo")
	p := &policy.Policy{Version: policy.Version, Client: "host1", Generation: 1, Issued: time.Now().UTC().Truncate(time.Second),
		Repositories: []policy.Repository{
			{Name: "server", Paths: []string{src}, Schedule: "every 10s"},
			{Name: "local", Location: local, Paths: []string{src}, Schedule: "every 10s"},
		}}
	if err := policy.Store(id, signedPolicy(t, priv, p)); err != nil {
		t.Fatal(err)
	}
	ag := startAgentProc(t, e)
	keyFile := filepath.Join(id, agent.DefaultKeyFile)
	withKey := &env{t: t, dir: e.dir, repo: e.repo, extra: []string{"COFFER_PASSWORD_FILE=" + keyFile}}
	count := func(repo string) int {
		so, _, code := withKey.runPass("", "snapshots", "--repo", repo, "--json")
		if code != 0 {
			return 0
		}
		return strings.Count(so, `"id"`)
	}
	serverRepo := srv.url("host1")
	if !within(25*time.Second, func() bool { return count(serverRepo) > 0 && count(local) > 0 }) {
		t.Fatalf("no scheduled backups: server %d, local %d", count(serverRepo), count(local))
	}
	if fi, err := os.Stat(keyFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("host key: %v, %v", fi, err)
	}
	restored := filepath.Join(e.dir, "restored")
	withKey.must("restore", "--repo", serverRepo, "latest", "--target", restored)
	if b, err := os.ReadFile(filepath.Join(restored, src, "a.txt")); err != nil || string(b) != "agent data" {
		t.Fatalf("restored by hand with the host key: %q, %v", b, err)
	}

	succeeded := serverdb.JobFilter{Client: "host1", Kind: "backup", States: []string{"succeeded"}}
	if !within(10*time.Second, func() bool {
		for _, j := range serverJobs(t, srv.dir, succeeded) {
			if j.Repository == "server" && j.Scheduled && len(j.Snapshot) == 64 {
				return true
			}
		}
		return false
	}) {
		t.Fatalf("the server has no succeeded scheduled backup: %+v", serverJobs(t, srv.dir, serverdb.JobFilter{}))
	}

	srv.kill()
	down := time.Now()
	before := count(local)
	if !within(25*time.Second, func() bool { return count(local) > before }) {
		t.Fatalf("no backup to the local repository while the server is down (%d snapshots)", before)
	}
	srv = startServer(t, srv.dir, srv.addr)
	if !within(15*time.Second, func() bool {
		for _, j := range serverJobs(t, srv.dir, succeeded) {
			if j.Repository == "local" && j.Start.After(down) {
				return true
			}
		}
		return false
	}) {
		t.Fatal("the report of a backup made while the server was down never arrived")
	}
	if took := ag.stop(t); took > 2*time.Second {
		t.Errorf("SIGTERM took %s", took)
	}
	if ag.code != 0 {
		t.Errorf("exit status %d after SIGTERM", ag.code)
	}
	if so := withKey.must("list", "locks", "--repo", local); strings.TrimSpace(so) != "" {
		t.Errorf("locks left: %s", so)
	}
	if !strings.Contains(ag.logText(), "agent stopped") {
		t.Errorf("no clean stop in the log")
	}
}

// TestAgentRefusesTamperedCachedPolicy: a cached policy edited on disk
// is refused at start, said in the log, and nothing is backed up by it.
func TestAgentRefusesTamperedCachedPolicy(t *testing.T) {
	t.Parallel()
	admin := newEnv(t)
	srv := startServer(t, serverInit(t, admin, "srv"), "127.0.0.1:0")
	e := newEnv(t)
	id, priv := fleetIdentity(t, srv, admin, e, "host2")
	src := filepath.Join(e.dir, "src")
	writeFile(t, filepath.Join(src, "a.txt"), []byte("x"))
	local := filepath.Join(e.dir, "local-repo")
	p := &policy.Policy{Version: policy.Version, Client: "host2", Generation: 1, Issued: time.Now().UTC().Truncate(time.Second),
		Repositories: []policy.Repository{{Name: "local", Location: local, Paths: []string{src}, Schedule: "every 10s"}}}
	signed := signedPolicy(t, priv, p)
	// Swap the schedule inside the signed document for another host's
	// paths: the signature no longer covers the bytes.
	p.Repositories[0].Paths = []string{"/etc"}
	forged := signedPolicy(t, priv, p)
	tampered := bytes.Replace(signed, signed[bytes.Index(signed, []byte(`"policy":"`)):bytes.Index(signed, []byte(`","sig"`))],
		forged[bytes.Index(forged, []byte(`"policy":"`)):bytes.Index(forged, []byte(`","sig"`))], 1)
	if err := os.WriteFile(filepath.Join(id, policy.CacheFile), tampered, 0o600); err != nil {
		t.Fatal(err)
	}
	ag := startAgentProc(t, e)
	if !within(10*time.Second, func() bool { return strings.Contains(ag.logText(), "cached policy refused") }) {
		t.Fatal("the tampered cache was not refused")
	}
	if !strings.Contains(ag.logText(), "signature") {
		t.Errorf("the refusal does not name the signature")
	}
	if !within(10*time.Second, func() bool {
		jobs := serverJobs(t, srv.dir, serverdb.JobFilter{Client: "host2", Kind: "policy"})
		return len(jobs) == 1 && jobs[0].State == "failed" && strings.Contains(jobs[0].Error, "signature")
	}) {
		t.Errorf("the refusal was not reported to the server: %+v", serverJobs(t, srv.dir, serverdb.JobFilter{}))
	}
	time.Sleep(11 * time.Second) // one whole `every 10s` period
	if _, err := os.Stat(local); !os.IsNotExist(err) {
		t.Fatalf("a backup ran under the tampered policy: %v", err)
	}
	if ag.stop(t); ag.code != 0 {
		t.Errorf("exit status %d", ag.code)
	}
}

// TestPackagingAgentUnit checks the agent's systemd unit with
// systemd-analyze, when it is installed: it parses cleanly and its
// exposure stays low for a service that must read every file.
func TestPackagingAgentUnit(t *testing.T) {
	sa, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze not installed")
	}
	unit, err := os.ReadFile(filepath.Join("..", "..", "packaging", "systemd", "coffer-agent.service"))
	if err != nil {
		t.Fatal(err)
	}
	const execPath = "/usr/bin/coffer"
	if !strings.Contains(string(unit), "ExecStart="+execPath+" agent run --identity /var/lib/coffer-agent\n") {
		t.Fatal("unexpected ExecStart")
	}
	path := filepath.Join(t.TempDir(), "coffer-agent.service")
	writeFile(t, path, []byte(strings.ReplaceAll(string(unit), execPath, cofferBin)))
	out, err := exec.Command(sa, "verify", path).CombinedOutput() // #nosec G204 -- fixed tool and a test file
	if err != nil || len(strings.TrimSpace(string(out))) != 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
	out, err = exec.Command(sa, "security", "--offline=yes", "--threshold=30", path).CombinedOutput() // #nosec G204 -- fixed tool and a test file
	if strings.Contains(string(out), "unrecognized option") {
		t.Skip("systemd-analyze security --offline not supported")
	}
	if err != nil {
		t.Fatalf("systemd-analyze security: exposure above 3.0: %v\n%s", err, out)
	}
	for _, want := range []string{"NoNewPrivileges=yes", "ProtectSystem=strict", "ReadWritePaths=/var/lib/coffer-agent", "UMask=0077", "RestrictSUIDSGID=yes"} {
		if !strings.Contains(string(unit), want) {
			t.Errorf("unit lacks %q", want)
		}
	}
	t.Log(lastLine(string(out)))
}
