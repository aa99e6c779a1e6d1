package restorer

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// TestSpecialFileInTargetReplaced plants a FIFO (and, as root, a device)
// where restore writes regular files: restore must not open them for
// reading (which blocks on a FIFO), and replaces them with the files, as it
// replaces anything else in their way.
func TestSpecialFileInTargetReplaced(t *testing.T) {
	t.Parallel()
	r, s, src := setup(t, map[string]string{"fifo": "was a fifo", "dev": "was a device"})
	dst := t.TempDir()
	dir := filepath.Join(dst, src)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(dir, "fifo"), 0o600); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() == 0 {
		// /dev/null's numbers: opening it would be harmless, but restore
		// must not open it at all.
		if err := syscall.Mknod(filepath.Join(dir, "dev"), syscall.S_IFCHR|0o600, 0x0103); err != nil {
			t.Fatal(err)
		}
	}
	done := make(chan error, 1)
	go func() { done <- New(r, Options{Target: dst}).Restore(context.Background(), s.Tree) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("restore blocks on a FIFO in its target")
	}
	for name, want := range map[string]string{"fifo": "was a fifo", "dev": "was a device"} {
		p := filepath.Join(dir, name)
		fi, err := os.Lstat(p)
		if err != nil || !fi.Mode().IsRegular() {
			t.Fatalf("%s: not replaced by a regular file: %v %v", name, fi, err)
		}
		if b, _ := os.ReadFile(p); string(b) != want {
			t.Errorf("%s: %q", name, b)
		}
	}
}

// TestOpenExistingDoesNotBlock: the open fileIsCorrect uses returns at once
// on a FIFO without a writer.
func TestOpenExistingDoesNotBlock(t *testing.T) {
	t.Parallel()
	p := filepath.Join(t.TempDir(), "fifo")
	if err := syscall.Mkfifo(p, 0o600); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		f, err := openExisting(p)
		if err == nil {
			_ = f.Close()
		}
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("openExisting blocks on a FIFO")
	}
}
