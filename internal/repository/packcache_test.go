package repository

import (
	"bytes"
	"context"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/coffer-backup/coffer/internal/keyring"
	"github.com/coffer-backup/coffer/internal/storage"
	"github.com/coffer-backup/coffer/internal/storage/mem"
)

// countingStorage counts pack loads.
type countingStorage struct {
	storage.Storage
	packLoads atomic.Int64
}

func (c *countingStorage) Load(ctx context.Context, h storage.Handle, off, n int64) ([]byte, error) {
	if h.Kind == storage.KindData {
		c.packLoads.Add(1)
	}
	return c.Storage.Load(ctx, h, off, n)
}

func TestPackCacheOneRequestPerPack(t *testing.T) {
	ctx := context.Background()
	st := &countingStorage{Storage: mem.New()}
	r, _, err := Init(ctx, st, InitOptions{Passphrase: []byte("pw"), KDF: keyring.KDFParams{Time: 1, MemoryKiB: 8 * 1024, Threads: 1}})
	if err != nil {
		t.Fatal(err)
	}
	r.StartWriting(ctx)
	var blobs [][]byte
	var ids []ID
	for i := 0; i < 50; i++ {
		b := bytes.Repeat([]byte{byte(i)}, 1000+i)
		id, _, err := r.SaveBlob(ctx, DataBlob, b)
		if err != nil {
			t.Fatal(err)
		}
		blobs, ids = append(blobs, b), append(ids, id)
	}
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	r.UsePackCache(2)
	st.packLoads.Store(0)
	var wg sync.WaitGroup
	for i := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got, err := r.LoadBlob(ctx, DataBlob, ids[i])
			if err != nil || !bytes.Equal(got, blobs[i]) {
				t.Errorf("blob %d: %v", i, err)
			}
		}()
	}
	wg.Wait()
	if n := st.packLoads.Load(); n != 1 {
		t.Fatalf("%d pack requests for 50 blobs of one pack, want 1", n)
	}
	// Reading twice must not see data decrypted in place in the cache.
	for i := range ids {
		if got, err := r.LoadBlob(ctx, DataBlob, ids[i]); err != nil || !bytes.Equal(got, blobs[i]) {
			t.Fatalf("second read of blob %d: %v", i, err)
		}
	}
}
