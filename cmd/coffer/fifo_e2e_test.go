package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// runBounded runs coffer and fails the test unless it exits in time. With
// interrupt, it sends SIGINT after 200 ms if coffer still runs, and allows
// it one second from there; without, it allows 20 s (a command blocked on
// a FIFO never ends). It returns stderr and the exit code.
func runBounded(t *testing.T, e *env, interrupt bool, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(cofferBin, args...) // #nosec G204 -- the test binary
	cmd.Env = e.environ(testPass)
	var se bytes.Buffer
	cmd.Stderr = &se
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	wait, allowed := 20*time.Second, "20 s"
	if interrupt {
		wait, allowed = 200*time.Millisecond, "a second after SIGINT"
	}
	var err error
	select {
	case err = <-done:
	case <-time.After(wait):
		if !interrupt {
			_ = cmd.Process.Kill()
			<-done
			t.Fatalf("coffer %s: still running after %s\n%s", strings.Join(args, " "), allowed, se.String())
		}
		_ = cmd.Process.Signal(syscall.SIGINT)
		select {
		case err = <-done:
		case <-time.After(time.Second):
			_ = cmd.Process.Kill()
			<-done
			t.Fatalf("coffer %s: still running %s\n%s", strings.Join(args, " "), allowed, se.String())
		}
	}
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatal(err)
	}
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && interrupt && ws.Signaled() && ws.Signal() == syscall.SIGINT {
		// On a loaded machine the SIGINT can come before coffer has set
		// up its handler: it then dies of the signal, as a shell's Ctrl-C
		// would make it (128+2), before it has taken any lock; the
		// callers still check that none is left.
		return se.String() + "\n(interrupted: killed by SIGINT during start-up)", 130
	}
	return se.String(), cmd.ProcessState.ExitCode()
}

// checkFails runs coffer twice, interrupted after 200 ms and not: the
// first must end within a second of SIGINT (exit 130, or the error if it
// came first), the second with an error saying want; neither leaves a
// lock.
func checkFails(t *testing.T, e *env, want string, args ...string) {
	t.Helper()
	for _, interrupt := range []bool{true, false} {
		se, code := runBounded(t, e, interrupt, args...)
		ok := code != 0 && strings.Contains(se, want)
		if interrupt && code == 130 && strings.Contains(se, "interrupted") {
			ok = true
		}
		if !ok {
			t.Errorf("%s (interrupted: %v): exit %d, want an error saying %q\n%s", args[0], interrupt, code, want, se)
		}
		if n := storedLocks(t, e); n != 0 {
			t.Errorf("%s (interrupted: %v) left %d locks", args[0], interrupt, n)
		}
	}
}

// replaceWithFIFO puts a FIFO where the file p was.
func replaceWithFIFO(t *testing.T, p string) {
	t.Helper()
	if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(p, 0o600); err != nil {
		t.Fatal(err)
	}
}

// onePack returns the path of a pack file of the repository.
func onePack(t *testing.T, e *env) string {
	t.Helper()
	shards, err := os.ReadDir(filepath.Join(e.repo, "data"))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range shards {
		packs, _ := os.ReadDir(filepath.Join(e.repo, "data", s.Name()))
		for _, p := range packs {
			return filepath.Join(e.repo, "data", s.Name(), p.Name())
		}
	}
	t.Fatal("no pack")
	return ""
}

// TestFIFOsDoNotHang plants FIFOs where coffer expects regular files (a
// pack, the config) and where restore writes one: every command ends at
// once (or within a second of SIGINT) with a clear error, or, for the
// restore target, replaces the FIFO, and no lock is left (issue 10,
// item 4).
func TestFIFOsDoNotHang(t *testing.T) {
	t.Parallel()
	t.Run("pack", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t)
		e.init()
		src := filepath.Join(e.dir, "src")
		writeFile(t, filepath.Join(src, "a"), []byte("some content to restore"))
		e.must("backup", "--repo", e.repo, src)
		replaceWithFIFO(t, onePack(t, e))
		// restore names the FIFO; check, whose listing has only regular
		// files, reports the pack missing.
		checkFails(t, e, "not a regular file (a FIFO)", "restore", "latest", "--repo", e.repo, "--target", filepath.Join(e.dir, "dst"))
		checkFails(t, e, "1 missing packs", "check", "--repo", e.repo, "--read-data")
	})
	t.Run("config", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t)
		e.init()
		replaceWithFIFO(t, filepath.Join(e.repo, "config"))
		checkFails(t, e, "config is a FIFO", "snapshots", "--repo", e.repo)
		checkFails(t, e, "config is a FIFO", "backup", "--repo", e.repo, e.dir)
	})
	t.Run("restore target", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t)
		e.init()
		src := filepath.Join(e.dir, "src")
		writeFile(t, filepath.Join(src, "a"), []byte("the file"))
		e.must("backup", "--repo", e.repo, src)
		dst := filepath.Join(e.dir, "dst")
		target := filepath.Join(dst, src, "a")
		if err := os.MkdirAll(filepath.Dir(target), 0o700); err != nil {
			t.Fatal(err)
		}
		replaceWithFIFO(t, target)
		// Interrupted, it stops within a second; left alone, it replaces
		// the FIFO.
		if se, code := runBounded(t, e, true, "restore", "latest", "--repo", e.repo, "--target", dst); code != 0 && code != 130 {
			t.Fatalf("restore over a FIFO, interrupted: exit %d\n%s", code, se)
		}
		se, code := runBounded(t, e, false, "restore", "latest", "--repo", e.repo, "--target", dst)
		if code != 0 {
			t.Fatalf("restore over a FIFO: exit %d\n%s", code, se)
		}
		if b, err := os.ReadFile(target); err != nil || string(b) != "the file" { // #nosec G304 -- test path
			t.Errorf("the FIFO was not replaced by the file: %q, %v", b, err)
		}
		if n := storedLocks(t, e); n != 0 {
			t.Errorf("restore left %d locks", n)
		}
	})
}
