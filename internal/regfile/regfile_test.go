package regfile

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// within fails the test if fn does not return within two seconds: the
// functions under test must never block on what they open.
func within(t *testing.T, what string, fn func() error) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- fn() }()
	select {
	case err := <-done:
		return err
	case <-time.After(2 * time.Second):
		t.Fatalf("%s blocks", what)
		return nil
	}
}

func TestOpenRefusesSpecialFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	paths := map[string]string{fifo: "a FIFO", dir: "a directory"}
	if _, err := os.Stat("/dev/null"); err == nil {
		paths["/dev/null"] = "a character device"
	}
	for p, kind := range paths {
		err := within(t, "Open "+p, func() error {
			f, _, err := Open(p)
			if err == nil {
				_ = f.Close()
			}
			return err
		})
		if !errors.Is(err, ErrNotRegular) || !strings.Contains(err.Error(), kind) || !strings.Contains(err.Error(), p) {
			t.Errorf("Open %s: %v, want ErrNotRegular naming it %s", p, err, kind)
		}
		if _, err := ReadFile(p, 10); !errors.Is(err, ErrNotRegular) {
			t.Errorf("ReadFile %s: %v", p, err)
		}
	}
}

func TestOpenRegularIsBlocking(t *testing.T) {
	t.Parallel()
	p := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(p, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	f, fi, err := Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if fi.Size() != 5 {
		t.Errorf("size %d", fi.Size())
	}
	fl, err := unix.FcntlInt(f.Fd(), unix.F_GETFL, 0)
	if err != nil {
		t.Fatal(err)
	}
	if fl&unix.O_NONBLOCK != 0 {
		t.Error("O_NONBLOCK left set on the opened file")
	}
	b, err := ReadFile(p, 5)
	if err != nil || string(b) != "hello" {
		t.Errorf("ReadFile = %q, %v", b, err)
	}
	if _, err := ReadFile(p, 4); err == nil || !strings.Contains(err.Error(), "larger") {
		t.Errorf("ReadFile over the limit: %v", err)
	}
}

func TestOpenInStaysInside(t *testing.T) {
	t.Parallel()
	outside := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(outside, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.Symlink(outside, filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(dir, "fifo"), 0o600); err != nil {
		t.Fatal(err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	if f, _, err := OpenIn(root, "link"); err == nil {
		f.Close()
		t.Error("OpenIn followed a link out of its root")
	}
	err = within(t, "OpenIn fifo", func() error { _, _, err := OpenIn(root, "fifo"); return err })
	if !errors.Is(err, ErrNotRegular) {
		t.Errorf("OpenIn fifo: %v", err)
	}
}
