package repository

import (
	"bytes"
	"context"
	"testing"

	"github.com/coffer-backup/coffer/internal/keyring"
	"github.com/coffer-backup/coffer/internal/storage"
	"github.com/coffer-backup/coffer/internal/storage/mem"
)

func TestSavePackAndExpectedSize(t *testing.T) {
	ctx := context.Background()
	st := mem.New()
	r, _, err := Init(ctx, st, InitOptions{Passphrase: []byte("pw"), KDF: keyring.KDFParams{Time: 1, MemoryKiB: 8 * 1024, Threads: 1}})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{1, 2, 17} {
		pw, err := r.NewPackWriter()
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < n; i++ {
			b := bytes.Repeat([]byte{byte(i)}, 100+i*37)
			if err := pw.Add(DataBlob, r.Hasher().Sum(b), b); err != nil {
				t.Fatal(err)
			}
		}
		ip, size, err := r.SavePack(ctx, pw)
		if err != nil {
			t.Fatal(err)
		}
		fi, err := st.Stat(ctx, storage.Handle{Kind: storage.KindData, Name: ip.ID.String()})
		if err != nil || fi.Size != size {
			t.Fatalf("stored %d bytes, SavePack says %d (%v)", fi.Size, size, err)
		}
		if got := ExpectedPackSize(ip.Blobs); got != size {
			t.Fatalf("%d blobs: ExpectedPackSize %d, pack has %d", n, got, size)
		}
		if len(ip.Blobs) > 1 {
			gap := append([]PackEntry(nil), ip.Blobs...)
			gap[0].Offset += 7
			if ExpectedPackSize(gap) != -1 {
				t.Fatal("non-contiguous entries accepted")
			}
		}
		pr, err := r.OpenPackHeader(ctx, ip.ID)
		if err != nil || pr.Term() != r.CurrentTerm() {
			t.Fatalf("term %v, want %d (%v)", pr, r.CurrentTerm(), err)
		}
	}
	// UseIndex makes LoadBlob see exactly the given index.
	r.UseIndex(NewMasterIndex())
	if _, err := r.LoadBlob(ctx, DataBlob, r.Hasher().Sum([]byte{0})); err == nil {
		t.Fatal("blob found in an empty index")
	}
}
