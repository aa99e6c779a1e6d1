package main

import (
	"crypto/rand"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func randomTree(t *testing.T, dir string, files, size int) {
	t.Helper()
	for i := 0; i < files; i++ {
		b := make([]byte, size)
		_, _ = rand.Read(b)
		writeFile(t, filepath.Join(dir, "d"+string(rune('a'+i%5)), "f"+big.NewInt(int64(i)).String()), b)
	}
}

func randDuration(max time.Duration) time.Duration {
	n, _ := rand.Int(rand.Reader, big.NewInt(int64(max)))
	return time.Duration(n.Int64())
}

// TestKill9Sweep kills backups with SIGKILL at random moments. Whatever was
// committed before stays intact: the repository checks clean, earlier
// snapshots restore, and the next backup succeeds.
func TestKill9Sweep(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.init()
	src := filepath.Join(e.dir, "src")
	randomTree(t, src, 40, 512<<10)
	e.must("backup", "--repo", e.repo, src)
	for i := 0; i < 8; i++ {
		// Change some data so every run has something to write.
		randomTree(t, filepath.Join(src, "round"+big.NewInt(int64(i)).String()), 6, 1<<20)
		cmd := exec.Command(cofferBin, "backup", "--repo", e.repo, "--force", src)
		cmd.Env = e.environ(testPass)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(randDuration(600 * time.Millisecond))
		_ = cmd.Process.Signal(syscall.SIGKILL)
		_ = cmd.Wait()
	}
	e.must("check", "--repo", e.repo, "--read-data")
	e.must("backup", "--repo", e.repo, src)
	e.must("check", "--repo", e.repo, "--read-data")
	dst := filepath.Join(e.dir, "dst")
	e.must("restore", "latest", "--repo", e.repo, "--target", dst, "--verify")
	diffTrees(t, src, filepath.Join(dst, src))
}

// TestInterruptExit130 interrupts a backup with SIGINT: exit status 130 and
// a repository that checks clean and accepts the next backup.
func TestInterruptExit130(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.init()
	src := filepath.Join(e.dir, "src")
	randomTree(t, src, 60, 1<<20)
	cmd := exec.Command(cofferBin, "backup", "--repo", e.repo, src)
	cmd.Env = e.environ(testPass)
	var se strings.Builder
	cmd.Stderr = &se
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Wait until the backup holds its lock, then interrupt it.
	deadline := time.Now().Add(time.Minute) // generous: other tests run beside this one
	for {
		if ents, _ := os.ReadDir(filepath.Join(e.repo, "locks")); len(ents) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("backup never took its lock")
		}
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond)
	_ = cmd.Process.Signal(syscall.SIGINT)
	err := cmd.Wait()
	ee, ok := err.(*exec.ExitError)
	if err == nil {
		t.Skip("backup finished before the interrupt arrived")
	}
	if !ok || ee.ExitCode() != 130 {
		t.Fatalf("interrupted backup: %v, want exit 130\n%s", err, se.String())
	}
	for _, want := range []string{"backup interrupted", "the repository is consistent", "no snapshot was written", "removed by prune"} {
		if !strings.Contains(se.String(), want) {
			t.Errorf("interrupted backup does not say %q: %s", want, se.String())
		}
	}
	if ents, _ := os.ReadDir(filepath.Join(e.repo, "locks")); len(ents) != 0 {
		t.Errorf("interrupted backup left %d locks", len(ents))
	}
	e.must("check", "--repo", e.repo)
	e.must("backup", "--repo", e.repo, src)
}
