package client

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/coffer-backup/coffer/internal/maintenance"
)

// resources is what a long-running process must not accumulate.
type resources struct {
	fds, goroutines int
	heap            uint64
}

func measure(t *testing.T) resources {
	t.Helper()
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("cannot count file descriptors: %v", err)
	}
	return resources{fds: len(ents), goroutines: runtime.NumGoroutine(), heap: ms.HeapAlloc}
}

// TestLongRunning runs many backups, restores and prunes in one process
// against one repository, as an agent would for months, and fails if file
// descriptors, goroutines or the live heap grow with the number of rounds.
// It is not parallel: it counts the whole process's resources.
func TestLongRunning(t *testing.T) {
	rounds := 200
	if testing.Short() || raceEnabled {
		rounds = 30
	}
	ctx := context.Background()
	o := testOptions(t)
	src := writeTree(t, map[string]string{"a": "first", "dir/b": "second"})
	target := t.TempDir()
	var base resources
	const warmup = 10
	for i := range rounds {
		if i == warmup {
			base = measure(t)
		}
		// A job opens the repository, works and closes it; every tenth
		// round also keeps one handle for several operations.
		c, err := Open(ctx, o)
		if err != nil {
			t.Fatal(err)
		}
		content := fmt.Sprintf("round %d %s", i, time.Now())
		if err := os.WriteFile(filepath.Join(src, "a"), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		res, err := c.Backup(ctx, BackupOptions{Paths: []string{src}})
		if err != nil || len(res.Errors) > 0 {
			t.Fatalf("round %d: backup: %v %v", i, err, res)
		}
		if _, err := c.Restore(ctx, RestoreOptions{Snapshot: "latest", Target: target}); err != nil {
			t.Fatalf("round %d: restore: %v", i, err)
		}
		got, err := os.ReadFile(filepath.Join(target, src, "a"))
		if err != nil || string(got) != content {
			t.Fatalf("round %d: restored %q (%v), want %q", i, got, err, content)
		}
		by, _ := maintenance.ParseGroupBy("host,paths")
		if _, err := c.Forget(ctx, ForgetOptions{Policy: maintenance.Policy{Last: 2}, GroupBy: by}); err != nil {
			t.Fatalf("round %d: forget: %v", i, err)
		}
		if _, err := c.Prune(ctx, maintenance.PruneOptions{SafetyMargin: -1, ClockSkew: -1}); err != nil {
			t.Fatalf("round %d: prune: %v", i, err)
		}
		if err := c.Close(); err != nil {
			t.Fatalf("round %d: close: %v", i, err)
		}
	}
	end := measure(t)
	t.Logf("after %d rounds: %d fds (%d at round %d), %d goroutines (%d), heap %d KiB (%d KiB)",
		rounds, end.fds, base.fds, warmup, end.goroutines, base.goroutines, end.heap>>10, base.heap>>10)
	if end.fds > base.fds+2 {
		t.Errorf("file descriptors grew from %d to %d", base.fds, end.fds)
	}
	if end.goroutines > base.goroutines+2 {
		t.Errorf("goroutines grew from %d to %d", base.goroutines, end.goroutines)
	}
	if end.heap > 2*base.heap+4<<20 {
		t.Errorf("live heap grew from %d KiB to %d KiB", base.heap>>10, end.heap>>10)
	}
}
