package agent

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coffer-backup/coffer/internal/client"
	"github.com/coffer-backup/coffer/internal/fleet/api"
	"github.com/coffer-backup/coffer/internal/fleet/policy"
	"github.com/coffer-backup/coffer/internal/keyring"
	"github.com/coffer-backup/coffer/internal/repository"
)

const id1 = "0123456789abcdef0123456789abcdef"

func sourceTree(t *testing.T) string {
	t.Helper()
	src := t.TempDir()
	for i, name := range []string{"a.txt", "b.txt", "sub/c.txt"} {
		p := filepath.Join(src, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(strings.Repeat("x", 100*(i+1))), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return src
}

func openWithKey(t *testing.T, loc, keyFile string) *client.Client {
	t.Helper()
	c, err := client.Open(context.Background(), client.Options{Location: loc, Credential: client.Credential{
		Secret: func(context.Context) ([]byte, error) { return readHostKey(keyFile, false) }}})
	if err != nil {
		t.Fatalf("open %s with the host key: %v", loc, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// A scheduled `every 10s` backup runs by itself: the first run creates the
// repository with a random host key (mode 0600) that opens it by hand; the
// agent reports running, then succeeded with the figures, and sends its
// version and policy generation with the stream request.
func TestScheduledBackupCreatesRepository(t *testing.T) {
	t.Parallel()
	f := newFleet(t, "web1.example")
	src := sourceTree(t)
	repo := filepath.Join(t.TempDir(), "repo")
	f.setPolicy(testPolicy(f.client, 3, repo, "every 10s", src))
	startAgent(t, f, nil)

	running := f.waitReport(15*time.Second, "running", func(r *api.Report) bool { return r.State == api.StateRunning && r.Scheduled })
	done := f.waitReport(15*time.Second, "succeeded", func(r *api.Report) bool { return r.Job == running.Job && r.State.Final() })
	if done.State != api.StateSucceeded || done.Kind != api.KindBackup || done.Repository != "main" {
		t.Fatalf("final report %+v", *done)
	}
	if done.Stats.FilesNew != 3 || done.Stats.BytesNew != 600 || done.Stats.BytesAdded == 0 || len(done.Snapshot) != 64 {
		t.Errorf("stats %+v, snapshot %q", done.Stats, done.Snapshot)
	}
	keyFile := filepath.Join(f.dir, DefaultKeyFile)
	fi, err := os.Stat(keyFile)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("host key %v, %v", fi, err)
	}
	key, _ := os.ReadFile(keyFile)
	if _, err := keyring.ParseRecoveryKey(strings.TrimSpace(string(key))); err != nil {
		t.Errorf("host key is not a recovery key: %v", err)
	}
	c := openWithKey(t, repo, keyFile)
	snaps, err := c.LoadSnapshots(context.Background())
	if err != nil || len(snaps) == 0 || snaps[0].ID.String() != done.Snapshot && snaps[len(snaps)-1].ID.String() != done.Snapshot {
		t.Fatalf("snapshots %v, %v", snaps, err)
	}
	f.mu.Lock()
	h := f.headers
	f.mu.Unlock()
	if h.Get(api.HeaderAgentVersion) != "test" {
		t.Errorf("agent version header %q", h.Get(api.HeaderAgentVersion))
	}
}

// Ordered jobs run as they arrive; a second job on a busy repository is
// skipped; cancel stops the running one, which reports cancelled and
// leaves no lock behind.
func TestOrderedJobsSkipAndCancel(t *testing.T) {
	t.Parallel()
	f := newFleet(t, "web2")
	src := sourceTree(t)
	repo := filepath.Join(t.TempDir(), "repo")
	f.setPolicy(testPolicy(f.client, 1, repo, "every 366d", src))
	hook, held := holdUntilDone()
	startAgent(t, f, func(c *Config) { c.fileHook = hook })
	waitPolicy(t, f)

	const id2 = "11111111111111111111111111111111"
	f.send(jobMsg(&api.Job{ID: id1, Kind: api.KindBackup, Repository: "main"}))
	f.waitReport(10*time.Second, "running", func(r *api.Report) bool { return r.Job == id1 && r.State == api.StateRunning })
	f.send(jobMsg(&api.Job{ID: id2, Kind: api.KindCheck, Repository: "main"}))
	skipped := f.waitReport(5*time.Second, "skipped", func(r *api.Report) bool { return r.Job == id2 && r.State.Final() })
	if skipped.State != api.StateSkipped || !strings.Contains(skipped.Error, id1) {
		t.Errorf("second job: %+v", *skipped)
	}
	waitHeld(t, held)
	if locks, _ := os.ReadDir(filepath.Join(repo, "locks")); len(locks) != 1 {
		t.Fatalf("%d locks while the backup runs, want 1", len(locks))
	}
	sent := time.Now()
	f.send(&api.Message{Type: api.MsgCancel, Time: time.Now(), Cancel: id1})
	end := f.waitReport(10*time.Second, "cancelled", func(r *api.Report) bool { return r.Job == id1 && r.State.Final() })
	if end.State != api.StateCancelled || !strings.Contains(end.Error, "cancelled by the server") {
		t.Fatalf("cancelled job: %+v", *end)
	}
	if d := time.Since(sent); d > 3*time.Second {
		t.Errorf("cancel took %s", d)
	}
	if locks, _ := os.ReadDir(filepath.Join(repo, "locks")); len(locks) != 0 {
		t.Errorf("%d locks left after cancel", len(locks))
	}
	f.send(jobMsg(&api.Job{ID: "22222222222222222222222222222222", Kind: api.KindBackup, Repository: "nosuch"}))
	bad := f.waitReport(5*time.Second, "refused", func(r *api.Report) bool { return r.Repository == "nosuch" })
	if bad.State != api.StateFailed || !strings.Contains(bad.Error, "no repository") {
		t.Errorf("job for an unknown repository: %+v", *bad)
	}
}

// Stopping the agent (SIGTERM in coffer agent run) cancels a running job
// within a second, releases its lock and queues its cancelled report.
func TestStopReleasesLocks(t *testing.T) {
	t.Parallel()
	f := newFleet(t, "web3")
	src := sourceTree(t)
	repo := filepath.Join(t.TempDir(), "repo")
	f.setPolicy(testPolicy(f.client, 1, repo, "every 366d", src))
	hook, held := holdUntilDone()
	stop := startAgent(t, f, func(c *Config) { c.fileHook = hook })
	waitPolicy(t, f)
	f.send(jobMsg(&api.Job{ID: id1, Kind: api.KindBackup, Repository: "main"}))
	f.waitReport(10*time.Second, "running", func(r *api.Report) bool { return r.Job == id1 && r.State == api.StateRunning })
	waitHeld(t, held)
	if locks, _ := os.ReadDir(filepath.Join(repo, "locks")); len(locks) != 1 {
		t.Fatalf("%d locks while the backup runs, want 1", len(locks))
	}
	if took := stop(); took > time.Second {
		t.Errorf("stopping took %s", took)
	}
	if locks, _ := os.ReadDir(filepath.Join(repo, "locks")); len(locks) != 0 {
		t.Errorf("%d locks left after stop", len(locks))
	}
	q, err := OpenQueue(filepath.Join(f.dir, QueueDir), 0)
	if err != nil {
		t.Fatal(err)
	}
	_, r, ok, err := q.Peek()
	if err != nil {
		t.Fatal(err)
	}
	if !ok {
		// The cancelled report reached the server before the agent
		// stopped; then it is there instead of in the queue.
		for _, got := range f.allReports() {
			if got.Job == id1 && got.State == api.StateCancelled {
				r, ok = got, true
			}
		}
	}
	if !ok || r.Job != id1 || r.State != api.StateCancelled || !strings.Contains(r.Error, "stopping") {
		t.Fatalf("cancelled report after stop, neither queued nor delivered: %+v, %v", r, ok)
	}
}

// A replayed older policy is refused and reported; the newer one stays in
// force and in the cache.
func TestPolicyReplayRefused(t *testing.T) {
	t.Parallel()
	f := newFleet(t, "web4")
	src := sourceTree(t)
	repo := filepath.Join(t.TempDir(), "repo")
	f.setPolicy(testPolicy(f.client, 5, repo, "every 366d", src))
	startAgent(t, f, nil)
	waitPolicy(t, f)
	waitCache(t, f, 5)
	f.setPolicy(testPolicy(f.client, 4, repo, "@daily", src))
	r := f.waitReport(5*time.Second, "policy", func(r *api.Report) bool { return r.Kind == api.KindPolicy })
	if r.State != api.StateFailed || !strings.Contains(r.Error, "older") {
		t.Errorf("replay report %+v", *r)
	}
	if p, err := policy.Load(f.dir, f.pub(), f.client); err != nil || p.Generation != 5 {
		t.Fatalf("cache after a replay: %+v, %v", p, err)
	}
	f.setPolicy(testPolicy(f.client, 6, repo, "@daily", src))
	waitCache(t, f, 6)
}

// waitCache waits for the cached policy to have generation gen.
func waitCache(t *testing.T, f *fleet, gen uint64) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		p, err := policy.Load(f.dir, f.pub(), f.client)
		if err == nil && p.Generation == gen {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("cached policy: %+v, %v; want generation %d", p, err, gen)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A cached policy that was edited is refused at start and reported; the
// agent runs nothing from it. A policy on the wire signed by another key
// is refused the same way.
func TestTamperedPolicyRefused(t *testing.T) {
	t.Parallel()
	f := newFleet(t, "web5")
	src := sourceTree(t)
	repo := filepath.Join(t.TempDir(), "repo")
	signed := f.sign(testPolicy(f.client, 2, repo, "every 10s", src))
	// Flip one byte of the signature.
	b := []byte(signed)
	k := strings.Index(string(b), `"sig":"`) + 10
	if b[k] == 'A' {
		b[k] = 'B'
	} else {
		b[k] = 'A'
	}
	if err := os.WriteFile(filepath.Join(f.dir, policy.CacheFile), b, 0o600); err != nil {
		t.Fatal(err)
	}
	startAgent(t, f, nil)
	r := f.waitReport(5*time.Second, "policy", func(r *api.Report) bool { return r.Kind == api.KindPolicy })
	if r.State != api.StateFailed || !strings.Contains(r.Error, "cached policy refused") || !strings.Contains(r.Error, "signature") {
		t.Errorf("report %+v", *r)
	}
	other := newFleet(t, "web5")
	f.send(&api.Message{Type: api.MsgPolicy, Time: time.Now(), Policy: []byte(strings.TrimSpace(string(other.sign(testPolicy(f.client, 9, repo, "every 10s", src)))))})
	f.waitReport(5*time.Second, "second policy", func(r *api.Report) bool {
		return r.Kind == api.KindPolicy && strings.Contains(r.Error, "from the server refused")
	})
	time.Sleep(200 * time.Millisecond)
	for _, r := range f.allReports() {
		if r.Kind == api.KindBackup {
			t.Errorf("a backup ran under a refused policy: %+v", *r)
		}
	}
	if _, err := os.Stat(repo); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("repository created under a refused policy: %v", err)
	}
}

// With the control connection down, the agent keeps backing up on its
// cached policy; the reports wait in the queue and reach the server when
// it is back.
func TestBacksUpWhileServerDown(t *testing.T) {
	t.Parallel()
	f := newFleet(t, "web6")
	src := sourceTree(t)
	repo := filepath.Join(t.TempDir(), "repo")
	if err := policy.Store(f.dir, f.sign(testPolicy(f.client, 1, repo, "every 10s", src))); err != nil {
		t.Fatal(err)
	}
	f.setDown(true)
	startAgent(t, f, nil)
	deadline := time.Now().Add(15 * time.Second)
	for {
		c, err := client.Open(context.Background(), client.Options{Location: repo, Credential: client.Credential{
			Secret: func(context.Context) ([]byte, error) { return readHostKey(filepath.Join(f.dir, DefaultKeyFile), false) }}})
		if err == nil {
			snaps, _ := c.LoadSnapshots(context.Background())
			_ = c.Close()
			if len(snaps) > 0 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no snapshot while the server is down: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if n := len(f.allReports()); n != 0 {
		t.Fatalf("%d reports reached a down server", n)
	}
	f.setDown(false)
	f.waitReport(10*time.Second, "queued backup", func(r *api.Report) bool {
		return r.Kind == api.KindBackup && r.State == api.StateSucceeded && r.Scheduled
	})
	// The queued reports may arrive before the stream reconnects: wait
	// for the stream's request before reading its headers.
	var gen string
	for end := time.Now().Add(30 * time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) { // past the reconnect backoff
		f.mu.Lock()
		gen = f.headers.Get(api.HeaderPolicyGeneration)
		f.mu.Unlock()
		if gen != "" {
			break
		}
	}
	if gen != "1" {
		t.Errorf("policy generation header %q, want the cached policy's 1", gen)
	}
}

// The stream is dropped when nothing arrives for OfflineAfter, and the
// agent connects again.
func TestSilentStreamDropped(t *testing.T) {
	t.Parallel()
	f := newFleet(t, "web7")
	f.mu.Lock()
	f.silent = true
	f.mu.Unlock()
	startAgent(t, f, func(c *Config) { c.OfflineAfter = 300 * time.Millisecond })
	deadline := time.Now().Add(5 * time.Second)
	for f.connections() < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("%d connections; a silent stream was not dropped", f.connections())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// The policy's escrow key gets one escrow slot, added once, that opens
// the repository with the escrow identity.
func TestEscrowSlotAddedOnce(t *testing.T) {
	t.Parallel()
	f := newFleet(t, "web8")
	src := sourceTree(t)
	repo := filepath.Join(t.TempDir(), "repo")
	esc, err := keyring.GenerateEscrowIdentity()
	if err != nil {
		t.Fatal(err)
	}
	p := testPolicy(f.client, 1, repo, "every 366d", src)
	p.EscrowPublicKey = esc.Recipient().Bytes()
	f.setPolicy(p)
	startAgent(t, f, nil)
	waitPolicy(t, f)
	for i, id := range []string{id1, "33333333333333333333333333333333"} {
		f.send(jobMsg(&api.Job{ID: id, Kind: api.KindBackup, Repository: "main"}))
		r := f.waitReport(15*time.Second, "backup", func(r *api.Report) bool { return r.Job == id && r.State.Final() })
		if r.State != api.StateSucceeded {
			t.Fatalf("backup %d: %+v", i, *r)
		}
	}
	c := openWithKey(t, repo, filepath.Join(f.dir, DefaultKeyFile))
	slots, _, err := repository.LoadSlots(context.Background(), c.Repository().Storage())
	if err != nil {
		t.Fatal(err)
	}
	escrow := 0
	for _, s := range slots {
		if s.Kind == keyring.SlotEscrow {
			escrow++
		}
	}
	if escrow != 1 || len(slots) != 2 {
		t.Fatalf("%d slots, %d escrow; want a recovery slot and one escrow slot", len(slots), escrow)
	}
	ec, err := client.Open(context.Background(), client.Options{Location: repo, Credential: client.Credential{
		Escrow: func(context.Context) (*keyring.EscrowIdentity, error) { return esc, nil }}})
	if err != nil {
		t.Fatalf("open with the escrow key: %v", err)
	}
	_ = ec.Close()
}

// waitPolicy waits until the agent holds the fleet's current policy.
func waitPolicy(t *testing.T, f *fleet) {
	t.Helper()
	f.mu.Lock()
	p, err := policy.Verify(f.signed, f.pub(), f.client, 0)
	f.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	waitCache(t, f, p.Generation)
}

// holdUntilDone returns a file hook that holds a backup after its first
// file, lock taken, until its job is cancelled, and a channel that says
// when it holds.
func holdUntilDone() (func(context.Context), <-chan struct{}) {
	held := make(chan struct{}, 1)
	return func(ctx context.Context) {
		select {
		case held <- struct{}{}:
		default:
		}
		<-ctx.Done()
	}, held
}

func waitHeld(t *testing.T, held <-chan struct{}) {
	t.Helper()
	select {
	case <-held:
	case <-time.After(10 * time.Second):
		t.Fatal("the backup never stored a file")
	}
}

// A restore lands under the policy's restore root; a target outside it is
// refused without writing; a check job succeeds on the repository.
func TestRestoreAndCheckJobs(t *testing.T) {
	t.Parallel()
	f := newFleet(t, "web10")
	src := sourceTree(t)
	repo := filepath.Join(t.TempDir(), "repo")
	root := filepath.Join(t.TempDir(), "restore")
	p := testPolicy(f.client, 1, repo, "every 366d", src)
	p.RestoreRoot = root
	p.ReportFileNames = true
	f.setPolicy(p)
	startAgent(t, f, nil)
	waitPolicy(t, f)
	run := func(j *api.Job) *api.Report {
		t.Helper()
		f.send(jobMsg(j))
		return f.waitReport(15*time.Second, string(j.Kind), func(r *api.Report) bool { return r.Job == j.ID && r.State.Final() })
	}
	if r := run(&api.Job{ID: id1, Kind: api.KindBackup, Repository: "main"}); r.State != api.StateSucceeded {
		t.Fatalf("backup: %+v", *r)
	}
	target := filepath.Join(root, "job")
	r := run(&api.Job{ID: "44444444444444444444444444444444", Kind: api.KindRestore, Repository: "main",
		Restore: &api.Restore{Snapshot: "latest", Target: target}})
	if r.State != api.StateSucceeded || r.Stats.FilesNew != 3 {
		t.Fatalf("restore: %+v", *r)
	}
	got, err := os.ReadFile(filepath.Join(target, src, "sub", "c.txt"))
	if err != nil || len(got) != 300 {
		t.Fatalf("restored file: %d bytes, %v", len(got), err)
	}
	outside := filepath.Join(t.TempDir(), "elsewhere")
	r = run(&api.Job{ID: "55555555555555555555555555555555", Kind: api.KindRestore, Repository: "main",
		Restore: &api.Restore{Snapshot: "latest", Target: outside}})
	if r.State != api.StateFailed || !strings.Contains(r.Error, "outside the restore root") {
		t.Fatalf("restore outside the root: %+v", *r)
	}
	if _, err := os.Stat(outside); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a refused restore wrote its target: %v", err)
	}
	r = run(&api.Job{ID: "66666666666666666666666666666666", Kind: api.KindCheck, Repository: "main", Check: &api.Check{ReadDataSubset: "100%"}})
	if r.State != api.StateSucceeded {
		t.Fatalf("check: %+v", *r)
	}
}

// Restoring outside the root works when the agent allows restores in
// place.
func TestRestoreInPlaceAllowed(t *testing.T) {
	t.Parallel()
	f := newFleet(t, "web11")
	src := sourceTree(t)
	repo := filepath.Join(t.TempDir(), "repo")
	f.setPolicy(testPolicy(f.client, 1, repo, "every 366d", src))
	startAgent(t, f, func(c *Config) { c.AllowRestoreInPlace = true })
	waitPolicy(t, f)
	f.send(jobMsg(&api.Job{ID: id1, Kind: api.KindBackup, Repository: "main"}))
	f.waitReport(15*time.Second, "backup", func(r *api.Report) bool { return r.Job == id1 && r.State == api.StateSucceeded })
	target := filepath.Join(t.TempDir(), "anywhere")
	const id2 = "77777777777777777777777777777777"
	f.send(jobMsg(&api.Job{ID: id2, Kind: api.KindRestore, Repository: "main", Restore: &api.Restore{Snapshot: "latest", Target: target}}))
	r := f.waitReport(15*time.Second, "restore", func(r *api.Report) bool { return r.Job == id2 && r.State.Final() })
	if r.State != api.StateSucceeded {
		t.Fatalf("restore in place: %+v", *r)
	}
	if _, err := os.Stat(filepath.Join(target, src, "a.txt")); err != nil {
		t.Fatal(err)
	}
}
