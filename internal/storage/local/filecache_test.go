package local

import (
	"bytes"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/coffer-backup/coffer/internal/storage"
)

func packName(i int) string { return fmt.Sprintf("%02x%062x", i%256, i) }

// TestPackFileCache loads from more packs than the cache holds, from several
// goroutines at once, and checks every read; then that Remove and Close
// leave nothing stale behind and Load still works after Close.
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
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if l.packs.lru.Len() != 0 || len(l.packs.files) != 0 {
		t.Fatal("Close left pack files open")
	}
	got, err := l.Load(ctx, storage.Handle{Kind: storage.KindData, Name: packName(0)}, 0, -1)
	if err != nil || !bytes.Equal(got, content(0)) {
		t.Fatalf("Load after Close: %v", err)
	}
	if _, err := l.Load(ctx, storage.Handle{Kind: storage.KindData, Name: packName(1)}, 1<<20, 1); !errors.Is(err, storage.ErrRange) {
		t.Fatalf("Load past the end of a cached pack: %v, want ErrRange", err)
	}
}
