package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func TestMount(t *testing.T) {
	t.Parallel()
	if _, err := os.Stat("/dev/fuse"); err != nil || os.Geteuid() != 0 {
		t.Skip("mount end-to-end test skipped: needs /dev/fuse and root")
	}
	e := newEnv(t)
	e.init()
	src := filepath.Join(e.dir, "src")
	data := bytes.Repeat([]byte("coffer mount\n"), 300000)
	writeFile(t, filepath.Join(src, "big"), data)
	e.must("backup", "--repo", e.repo, "--tag", "t1", src)
	mnt := filepath.Join(e.dir, "mnt")
	if err := os.Mkdir(mnt, 0o700); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(cofferBin, "mount", "--repo", e.repo, mnt)
	cmd.Env = e.environ(testPass)
	se := &lockedBuffer{}
	cmd.Stderr = se
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(se.String(), "serving") {
		select {
		case err := <-exited:
			t.Skipf("mount end-to-end test skipped: mounting is not permitted here: %v %s", err, se.String())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			t.Fatalf("mount did not come up: %s", se.String())
		}
	}
	for _, p := range []string{"snapshots/latest", "tags/t1/latest"} {
		got, err := os.ReadFile(filepath.Join(mnt, p, src, "big")) // #nosec G304 -- the test's own mount
		if err != nil || !bytes.Equal(got, data) {
			t.Errorf("%s: %d bytes, %v", p, len(got), err)
		}
	}
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("mount exited with %v: %s", err, se.String())
		}
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatal("mount did not stop on SIGINT")
	}
	if entries, err := os.ReadDir(mnt); err != nil || len(entries) != 0 {
		t.Fatalf("mount point after unmount: %v %v", entries, err)
	}
	if _, _, code := e.run("mount", "--repo", e.repo, filepath.Join(e.dir, "nope")); code != exitUsage {
		t.Errorf("mount on a missing directory: exit %d", code)
	}
}

// lockedBuffer is a bytes.Buffer safe to read while a process writes it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
