package local

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/coffer-backup/coffer/internal/storage"
)

func packName(i int) string { return fmt.Sprintf("%02x%062x", i%256, i) }

// TestPackFileCache loads from more packs than the cache holds, from several
// goroutines at once, and checks every read; then that Remove and Close
// leave nothing stale behind and Load after Close fails.
func TestPackFileCache(t *testing.T) {
	l := newRepo(t)
	n := 3 * openPacks
	content := func(i int) []byte { return bytes.Repeat([]byte{byte(i), byte(i >> 8), 7}, 100+i) }
	for i := range n {
		save(t, l, storage.KindData, packName(i), content(i))
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range 4 * n {
				i := (k*7 + w*13) % n
				want := content(i)
				off := int64(k % 50)
				got, err := l.Load(ctx, storage.Handle{Kind: storage.KindData, Name: packName(i)}, off, 9)
				if err != nil || !bytes.Equal(got, want[off:off+9]) {
					errs <- fmt.Errorf("pack %d at %d: %q, %v", i, off, got, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	l.packs.mu.Lock()
	open := l.packs.lru.Len()
	l.packs.mu.Unlock()
	if open > openPacks {
		t.Fatalf("%d pack files open, limit %d", open, openPacks)
	}

	h := storage.Handle{Kind: storage.KindData, Name: packName(n - 1)}
	if _, err := l.Load(ctx, h, 0, -1); err != nil {
		t.Fatal(err)
	}
	if err := l.Remove(ctx, h); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Load(ctx, h, 0, -1); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("Load after Remove: %v, want ErrNotFound", err)
	}
	if _, err := l.Load(ctx, storage.Handle{Kind: storage.KindData, Name: packName(1)}, 1<<20, 1); !errors.Is(err, storage.ErrRange) {
		t.Fatalf("Load past the end of a cached pack: %v, want ErrRange", err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if l.packs.lru.Len() != 0 || len(l.packs.files) != 0 {
		t.Fatal("Close left pack files open")
	}
	if _, err := l.Load(ctx, storage.Handle{Kind: storage.KindData, Name: packName(0)}, 0, -1); !errors.Is(err, storage.ErrClosed) {
		t.Fatalf("Load after Close: %v, want ErrClosed", err)
	}
	if l.packs.lru.Len() != 0 {
		t.Fatal("Load after Close cached a pack file")
	}
}

// openFDs counts this process's open file descriptors.
func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("cannot count file descriptors: %v", err)
	}
	return len(ents)
}

// TestCloseReleasesFDs loads from many packs, so that the cache holds
// openPacks files, and checks that Close gives every descriptor back, also
// one held by a Load in progress, and that later calls fail with
// ErrClosed. Not parallel: it counts the whole process's descriptors.
func TestCloseReleasesFDs(t *testing.T) {
	l := newRepo(t)
	n := openPacks + 10
	for i := range n {
		save(t, l, storage.KindData, packName(i), []byte{byte(i)})
	}
	before := openFDs(t) - 1 // the repository directory, which Close closes too
	for round := range 3 {
		for i := range n {
			if _, err := l.Load(ctx, storage.Handle{Kind: storage.KindData, Name: packName(i)}, 0, -1); err != nil {
				t.Fatalf("round %d, pack %d: %v", round, i, err)
			}
		}
	}
	// A Load in progress at Close keeps its file until it ends.
	inUse, err := l.packs.acquire(filepath.Join("data", shard(packName(0)), packName(0)), l.openObject)
	if err != nil {
		t.Fatal(err)
	}
	if held := openFDs(t) - before; held != openPacks+1 {
		t.Fatalf("%d more descriptors open after the loads, want the cache's %d and the directory", held, openPacks)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if held := openFDs(t) - before; held != 1 {
		t.Fatalf("%d more descriptors open after Close with one Load in progress, want 1", held)
	}
	l.packs.release(inUse)
	if held := openFDs(t) - before; held != 0 {
		t.Fatalf("Close leaked %d file descriptors", held)
	}
	h := storage.Handle{Kind: storage.KindData, Name: packName(1)}
	calls := map[string]error{
		"Load":      func() error { _, err := l.Load(ctx, h, 0, -1); return err }(),
		"Stat":      func() error { _, err := l.Stat(ctx, h); return err }(),
		"Save":      l.Save(ctx, storage.Handle{Kind: storage.KindData, Name: "ffnew"}, []byte("x")),
		"Remove":    l.Remove(ctx, h),
		"List":      l.List(ctx, storage.KindData, func(storage.FileInfo) error { return nil }),
		"CleanTemp": func() error { _, err := l.CleanTemp(0); return err }(),
	}
	for name, err := range calls {
		if !errors.Is(err, storage.ErrClosed) {
			t.Errorf("%s after Close: %v, want ErrClosed", name, err)
		}
	}
	if held := openFDs(t) - before; held != 0 {
		t.Fatalf("calls after Close left %d file descriptors open", held)
	}
	if err := l.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}
