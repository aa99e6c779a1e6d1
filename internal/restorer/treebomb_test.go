package restorer

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/coffer-backup/coffer/internal/fsmeta"
	"github.com/coffer-backup/coffer/internal/keyring"
	"github.com/coffer-backup/coffer/internal/repository"
	"github.com/coffer-backup/coffer/internal/storage/mem"
)

// hostileRepo is a repository in which the test, as a key holder, writes
// trees by hand; build stores the trees build returns and flushes.
func hostileRepo(t *testing.T, build func(r *repository.Repository) repository.ID) (*repository.Repository, repository.ID) {
	t.Helper()
	ctx := context.Background()
	r, _, err := repository.Init(ctx, mem.New(), repository.InitOptions{
		Passphrase: []byte("pw"), KDF: keyring.KDFParams{Time: 1, MemoryKiB: 8 * 1024, Threads: 1}})
	if err != nil {
		t.Fatal(err)
	}
	r.StartWriting(ctx)
	top := build(r)
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	return r, top
}

func saveTree(t *testing.T, r *repository.Repository, nodes ...*repository.Node) repository.ID {
	t.Helper()
	id, err := r.SaveTree(context.Background(), &repository.Tree{Nodes: nodes})
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func dirNode(name string, sub repository.ID) *repository.Node {
	return &repository.Node{Name: []byte(name), Meta: fsmeta.Meta{Type: fsmeta.TypeDir, Mode: 0o700}, Subtree: &sub}
}

// restoreWithin runs a restore and fails the test if it has not returned
// after limit (the restore is then cancelled, and left to stop).
func restoreWithin(t *testing.T, limit time.Duration, r *repository.Repository, tree repository.ID, o Options) (*Restorer, error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	res := New(r, o)
	done := make(chan error, 1)
	go func() { done <- res.Restore(ctx, tree) }()
	select {
	case err := <-done:
		return res, err
	case <-time.After(limit):
		cancel()
		t.Fatalf("restore still running after %v", limit)
		return nil, nil
	}
}

// memDir is a directory on a memory filesystem where there is one: the
// restore below makes its budget's worth of directories before it stops,
// which takes a minute on a slow disk and a second in memory.
func memDir(t *testing.T) string {
	t.Helper()
	d, err := os.MkdirTemp("/dev/shm", "coffer-restorer-")
	if err != nil {
		return t.TempDir()
	}
	t.Cleanup(func() { _ = os.RemoveAll(d) })
	return d
}

// TestRestoreBoundsRepeatedSubtrees: 40 levels, each tree naming the next
// twice, would restore 2^40 directories (issue 10, item 8). The restore
// stops with ErrTreeBomb after a bounded number of entries.
func TestRestoreBoundsRepeatedSubtrees(t *testing.T) {
	t.Parallel()
	r, top := hostileRepo(t, func(r *repository.Repository) repository.ID {
		id := saveTree(t, r)
		for range 40 {
			id = saveTree(t, r, dirNode("a", id), dirNode("b", id))
		}
		return id
	})
	_, err := restoreWithin(t, 3*time.Minute, r, top, Options{Target: memDir(t)}) // seconds when idle; 2^40 would never end
	if !errors.Is(err, repository.ErrTreeBomb) {
		t.Fatalf("restore of a 2^40 tree bomb: %v", err)
	}
}

// TestRestoreRefusesOverlongPath: a node whose snapshot path exceeds
// repository.MaxPathLength is reported and skipped; its siblings restore.
func TestRestoreRefusesOverlongPath(t *testing.T) {
	t.Parallel()
	// 22 levels of 190-byte names: the 22nd path has 4202 bytes (the
	// 21st, 4011, still fits a real filesystem's PATH_MAX under the target).
	long := string(bytes.Repeat([]byte("n"), 190))
	r, top := hostileRepo(t, func(r *repository.Repository) repository.ID {
		id := saveTree(t, r)
		for range 21 {
			id = saveTree(t, r, dirNode(long, id))
		}
		return saveTree(t, r, dirNode(long, id), dirNode("ok", saveTree(t, r)))
	})
	dst := t.TempDir()
	res, err := restoreWithin(t, 30*time.Second, r, top, Options{Target: dst})
	if err != nil {
		t.Fatal(err)
	}
	errs := res.Errors()
	if len(errs) != 1 || !errors.Is(errs[0].Err, repository.ErrPathTooLong) {
		t.Fatalf("errors %v", errs)
	}
	if fi, err := os.Stat(filepath.Join(dst, "ok")); err != nil || !fi.IsDir() {
		t.Fatalf("sibling not restored: %v", err)
	}
}

// TestVerifyHoleBySeeking: restore --verify of a file that is a 1 TiB hole
// (issue 10, item 8) checks the hole by seeking, in well under a second of
// work, instead of reading 1 TiB.
func TestVerifyHoleBySeeking(t *testing.T) {
	t.Parallel()
	const tib = 1 << 40
	r, top := hostileRepo(t, func(r *repository.Repository) repository.ID {
		data := []byte("tail")
		id, _, err := r.SaveBlob(context.Background(), repository.DataBlob, data)
		if err != nil {
			t.Fatal(err)
		}
		f := &repository.Node{Name: []byte("hole"), Meta: fsmeta.Meta{Type: fsmeta.TypeFile, Mode: 0o600, Size: tib + 4},
			Content: []repository.ContentItem{{Hole: tib}, {ID: &id, Size: 4}}}
		return saveTree(t, r, f)
	})
	dst := t.TempDir()
	res, err := restoreWithin(t, 20*time.Second, r, top, Options{Target: dst, Verify: true})
	if err != nil || len(res.Errors()) != 0 {
		t.Fatalf("restore: %v, %v", err, res.Errors())
	}
	if fi, err := os.Stat(filepath.Join(dst, "hole")); err != nil || fi.Size() != tib+4 {
		t.Fatalf("restored file: %v", err)
	}
}

// TestCheckZeroReadsDataInHoles: checkZero skips holes but still reads
// what the file stores, so a non-zero byte where the snapshot records a
// hole is found, zeros stored as data pass, and cancellation stops it.
func TestCheckZeroReadsDataInHoles(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f, err := os.Create(filepath.Join(t.TempDir(), "f"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(1 << 30); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(make([]byte, 1<<20), 100<<20); err != nil { // zeros stored as data
		t.Fatal(err)
	}
	if err := checkZero(ctx, f, 0, 1<<30); err != nil {
		t.Fatalf("hole and stored zeros: %v", err)
	}
	if _, err := f.WriteAt([]byte{7}, 500<<20); err != nil {
		t.Fatal(err)
	}
	if err := checkZero(ctx, f, 0, 1<<30); err == nil {
		t.Fatal("a non-zero byte inside a recorded hole was not found")
	}
	if err := checkZero(ctx, f, 0, 500<<20); err != nil {
		t.Fatalf("range before the byte: %v", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := checkZero(cctx, f, 100<<20, 1<<20); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled check: %v", err)
	}
}
