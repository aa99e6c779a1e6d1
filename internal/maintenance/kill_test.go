package maintenance

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/coffer-backup/coffer/internal/maintenance/repotest"
	"github.com/coffer-backup/coffer/internal/storage"
	"github.com/coffer-backup/coffer/internal/storage/local"
)

const killHelperEnv = "COFFER_PRUNE_KILL_HELPER"

// TestPruneKillHelper is the child of TestPruneKill9: it prunes the local
// repository named by the environment and exits.
func TestPruneKillHelper(t *testing.T) {
	dir := os.Getenv(killHelperEnv)
	if dir == "" {
		t.Skip("helper for TestPruneKill9")
	}
	ctx := context.Background()
	st, err := local.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	r := openRepo(t, st)
	l, err := AcquireLock(ctx, r, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Prune(ctx, r, PruneOptions{Lock: l, MaxUnused: MaxUnused{Percent: 0}, SafetyMargin: -1}); err != nil {
		t.Fatal(err)
	}
	_ = l.Unlock(ctx)
}

// TestPruneKill9 kills prune with SIGKILL at random moments. After every
// kill, check must find no damage and the live snapshot must restore byte
// for byte; a final uninterrupted prune leaves nothing behind.
func TestPruneKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("slow")
	}
	if os.Getenv(killHelperEnv) != "" {
		t.Skip("in helper")
	}
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "repo")
	st, err := local.Create(dir)
	if err != nil {
		t.Fatal(err)
	}
	repotest.Init(t, st)
	rng := rand.New(rand.NewPCG(31, 32))
	src := t.TempDir()
	repotest.RandomTree(t, src, 10, 300<<10, rng)
	prev := repotest.Backup(t, st, []string{src})
	killed, finished := 0, 0
	// Delays are drawn below the time a whole run took last, so kills
	// land anywhere in prune rather than mostly after it.
	est := 300 * time.Millisecond
	for round := 0; round < 16; round++ {
		// New garbage every round: change some files, back up, forget the
		// previous snapshot.
		for i := 0; i < 3; i++ {
			repotest.WriteFile(t, filepath.Join(src, fmt.Sprintf("d%d", rng.IntN(3)), fmt.Sprintf("f%03d", rng.IntN(10))), rng.IntN(300<<10), rng)
		}
		cur := repotest.Backup(t, st, []string{src})
		want := repotest.Files(t, src)
		forget(t, st, prev)
		prev = cur

		cmd := exec.Command(os.Args[0], "-test.run=^TestPruneKillHelper$", "-test.count=1") // #nosec G204 -- the test binary itself
		cmd.Env = append(os.Environ(), killHelperEnv+"="+dir)
		start := time.Now()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		delay := time.Duration(rng.Int64N(int64(est)))
		if round%4 == 0 {
			delay = time.Hour // let every fourth run finish, and time it
		}
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("round %d: prune failed: %v", round, err)
			}
			finished++
			est = time.Since(start)
		case <-time.After(delay):
			_ = cmd.Process.Signal(syscall.SIGKILL)
			<-done
			killed++
		}
		res := mustCheck(t, st)
		repotest.AssertRestores(t, st, cur, want)
		t.Logf("round %d: delay %v, %d unindexed packs, %d condemned records", round, delay, len(res.UnindexedPacks), repotest.Count(t, st, storage.KindCondemned))
	}
	t.Logf("%d prunes killed, %d finished", killed, finished)
	if killed == 0 {
		t.Fatal("no prune was killed")
	}
	// A prune that runs to the end cleans up whatever the killed ones left
	// (unindexed packs need a second run: they are condemned first).
	for i := 0; i < 2; i++ {
		r := openRepo(t, st)
		if _, err := Prune(context.Background(), r, PruneOptions{MaxUnused: MaxUnused{Percent: 0}, SafetyMargin: -1}); err != nil {
			t.Fatal(err)
		}
	}
	res := mustCheck(t, st)
	if len(res.UnindexedPacks) != 0 || repotest.Count(t, st, storage.KindCondemned) != 0 {
		t.Fatalf("left behind: %d unindexed packs, %d records", len(res.UnindexedPacks), repotest.Count(t, st, storage.KindCondemned))
	}
	if n := repotest.Count(t, st, storage.KindIndex); n != 1 {
		t.Fatalf("%d index files", n)
	}
	repotest.AssertRestores(t, st, prev, repotest.Files(t, src))
}
