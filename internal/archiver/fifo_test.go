package archiver

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/coffer-backup/coffer/internal/fsmeta"
	"github.com/coffer-backup/coffer/internal/repository"
)

// TestFIFOStoredNotRead: a FIFO in the backup source is stored as a FIFO
// and never opened for reading (which would block without a writer).
func TestFIFOStoredNotRead(t *testing.T) {
	t.Parallel()
	r := newRepo(t)
	src := t.TempDir()
	write(t, filepath.Join(src, "f"), "data")
	if err := syscall.Mkfifo(filepath.Join(src, "pipe"), 0o600); err != nil {
		t.Fatal(err)
	}
	type result struct {
		s   *repository.Snapshot
		err error
	}
	done := make(chan result, 1)
	go func() {
		s, err := New(r, Options{}).Snapshot(context.Background(), []string{src})
		done <- result{s, err}
	}()
	var res result
	select {
	case res = <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("backup blocks on a FIFO in its source")
	}
	if res.err != nil {
		t.Fatal(res.err)
	}
	found := false
	err := r.Walk(context.Background(), res.s.Tree, func(p string, n *repository.Node) error {
		if filepath.Base(p) == "pipe" {
			found = n.Type == fsmeta.TypeFIFO && len(n.Content) == 0
		}
		return nil
	})
	if err != nil || !found {
		t.Fatalf("the FIFO is not stored as a FIFO: %v", err)
	}
}

// TestOpenSourceDoesNotBlock: a regular file swapped for a FIFO after the
// walk saw it is opened at once (and then refused by its type).
func TestOpenSourceDoesNotBlock(t *testing.T) {
	t.Parallel()
	p := filepath.Join(t.TempDir(), "pipe")
	if err := syscall.Mkfifo(p, 0o600); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		f, err := openSource(p)
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
		t.Fatal("openSource blocks on a FIFO")
	}
	if _, _, _, err := New(newRepo(t), Options{}).saveFile(context.Background(), p); err == nil {
		_ = os.Remove(p)
		t.Fatal("saveFile read a FIFO as a regular file")
	}
}
