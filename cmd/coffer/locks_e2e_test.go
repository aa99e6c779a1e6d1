package main

import (
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coffer-backup/coffer/internal/storage/local"
)

// holdLock starts a backup of a standard input that never ends, so it
// holds a shared lock, and returns once its lock is stored. wrap, if not
// empty, runs coffer through another program (unshare). The process is
// killed when the test ends.
func holdLock(t *testing.T, e *env, wrap ...string) *exec.Cmd {
	t.Helper()
	args := append(wrap, cofferBin, "backup", "--repo", e.repo, "--stdin")
	cmd := exec.Command(args[0], args[1:]...) // #nosec G204 -- test binary
	cmd.Env = e.environ(testPass)
	w, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = w.Close(); _ = cmd.Wait() })
	for i := 0; i < 200; i++ {
		if storedLocks(t, e) > 0 {
			return cmd
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("the lock holder never stored its lock")
	return nil
}

// storedLocks counts the lock objects in the repository. A lock being
// written is a ".tmp-*" file beside them, which storage never lists: a
// holder killed before it renames that file has stored no lock.
func storedLocks(t *testing.T, e *env) int {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(e.repo, "locks"))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	n := 0
	for _, ent := range ents {
		if !strings.HasPrefix(ent.Name(), local.TempPrefix) {
			n++
		}
	}
	return n
}

// TestLiveLockHint: a lock of a live process (as after PID reuse) blocks
// an exclusive command. The error says how the lock goes away; plain
// unlock keeps it and fails, --remove-all removes it (issue 10, item 19).
func TestLiveLockHint(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.init()
	holdLock(t, e)
	_, se, code := e.run("key", "rotate", "--repo", e.repo)
	if code != 11 || !strings.Contains(se, "unlock --remove-all") {
		t.Fatalf("key rotate beside a live lock: exit %d\n%s", code, se)
	}
	so, se, code := e.run("unlock", "--repo", e.repo)
	if code != 11 || !strings.Contains(se, "unlock --remove-all") || strings.Contains(so, "no stale locks") {
		t.Fatalf("unlock left a blocking lock but said: exit %d\n%s\n%s", code, so, se)
	}
	e.must("unlock", "--repo", e.repo, "--remove-all")
	e.must("key", "rotate", "--repo", e.repo)
}

// TestOtherHostLockHint: a lock left by a process on another host is not
// stale for 30 minutes. The blocked command says when it goes stale, and
// unlock fails while it is there (issue 10, item 19).
func TestOtherHostLockHint(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.init()
	if out, err := exec.Command("unshare", "--uts", "true").CombinedOutput(); err != nil {
		t.Skipf("cannot make a UTS namespace here: %v %s", err, out)
	}
	holder := holdLock(t, e, "unshare", "--uts", "sh", "-c", `hostname other-host && exec "$0" "$@"`)
	_ = holder.Process.Signal(syscall.SIGKILL)
	_ = holder.Wait()
	_, se, code := e.run("key", "rotate", "--repo", e.repo)
	if code != 11 || !strings.Contains(se, "other-host") || !strings.Contains(se, "goes stale at") || !strings.Contains(se, "unlock --remove-all") {
		t.Fatalf("key rotate beside another host's lock: exit %d\n%s", code, se)
	}
	if _, se, code := e.run("unlock", "--repo", e.repo); code != 11 || !strings.Contains(se, "other-host") {
		t.Fatalf("unlock with another host's lock left: exit %d\n%s", code, se)
	}
	e.must("unlock", "--repo", e.repo, "--remove-all")
	e.must("key", "rotate", "--repo", e.repo)
}

// plantGarbageLock stores bytes that are no lock under a lock's name.
func plantGarbageLock(t *testing.T, e *env) {
	t.Helper()
	writeFile(t, filepath.Join(e.repo, "locks", strings.Repeat("ab", 32)), []byte("this is not a coffer lock"))
}

// TestGarbageLock: a lock object that does not open blocks nothing but
// exclusive commands, is reported, and unlock (plain or --remove-all)
// removes it (issue 10, item 7).
func TestGarbageLock(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.init()
	src := filepath.Join(e.dir, "src")
	writeFile(t, filepath.Join(src, "f"), []byte("data"))
	plantGarbageLock(t, e)
	_, se, code := e.run("backup", "--repo", e.repo, src)
	if code != 0 || !strings.Contains(se, "unreadable lock") {
		t.Fatalf("backup beside a garbage lock: exit %d\n%s", code, se)
	}
	e.must("snapshots", "--repo", e.repo)
	e.must("restore", "latest", "--repo", e.repo, "--target", filepath.Join(e.dir, "dst"))
	if _, se, code := e.run("key", "rotate", "--repo", e.repo); code != 11 || !strings.Contains(se, "coffer unlock") {
		t.Fatalf("key rotate beside a garbage lock: exit %d\n%s", code, se)
	}
	if so := e.must("unlock", "--repo", e.repo); !strings.Contains(so, "unreadable lock") {
		t.Fatalf("unlock did not report the garbage lock: %s", so)
	}
	e.must("key", "rotate", "--repo", e.repo)
	plantGarbageLock(t, e)
	if so := e.must("unlock", "--repo", e.repo, "--remove-all"); !strings.Contains(so, "unreadable lock") {
		t.Fatalf("unlock --remove-all did not report the garbage lock: %s", so)
	}
	if n := storedLocks(t, e); n != 0 {
		t.Fatalf("%d locks left", n)
	}
}

// fillDisk writes a file until the file system is full.
func fillDisk(t *testing.T, dir string) {
	t.Helper()
	f, err := os.Create(filepath.Join(dir, "filler"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	for {
		if _, err := f.Write(buf); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatal(err)
			}
			break
		}
	}
	for _, n := range []int{4096, 512, 1} {
		for {
			if _, err := f.Write(buf[:n]); err != nil {
				break
			}
		}
	}
	_, _ = io.WriteString(f, "")
}

// TestReadOnlyCommandsOnFullDisk: with the repository's disk full, the
// read-only commands still work, warning that they run without a lock, and
// the failing backup names its object once (issue 10, item 20).
func TestReadOnlyCommandsOnFullDisk(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	mnt := mountTmpfs(t, filepath.Join(e.dir, "small"), "4m")
	e.repo = filepath.Join(mnt, "repo")
	e.init()
	src := filepath.Join(e.dir, "src")
	writeFile(t, filepath.Join(src, "f"), []byte("fits easily"))
	e.must("backup", "--repo", e.repo, src)
	fillDisk(t, mnt)
	for _, args := range [][]string{
		{"snapshots"}, {"ls", "latest"}, {"check"}, {"restore", "latest", "--target", filepath.Join(e.dir, "dst")},
	} {
		_, se, code := e.run(append(args, "--repo", e.repo)...)
		if code != 0 || !strings.Contains(se, "without a lock") {
			t.Fatalf("%s on a full disk: exit %d\n%s", args[0], code, se)
		}
	}
	diffTrees(t, src, filepath.Join(e.dir, "dst", src))
	_, se, code := e.run("backup", "--repo", e.repo, src)
	if code == 0 || !strings.Contains(se, "no space left") {
		t.Fatalf("backup on a full disk: exit %d\n%s", code, se)
	}
	if strings.Count(se, "save locks/") > 1 {
		t.Fatalf("the error repeats its context:\n%s", se)
	}
}
