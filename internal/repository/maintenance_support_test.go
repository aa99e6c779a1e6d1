package repository

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
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

func fakePacks(rng *rand.Rand, n, maxBlobs int) []IndexPack {
	var out []IndexPack
	for i := 0; i < n; i++ {
		p := IndexPack{ID: NewRandomID()}
		for j := rng.IntN(maxBlobs + 1); j > 0; j-- {
			p.Blobs = append(p.Blobs, PackEntry{Type: DataBlob, ID: NewRandomID(), Offset: uint32(44 + j*100), Length: 100, RawLen: 50})
		}
		out = append(out, p)
	}
	return out
}

// TestSplitIndex: groups keep the packs in order, never split a pack, stay
// within the limit unless one pack alone exceeds it, and are never empty
// (but for the single group of no packs).
func TestSplitIndex(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2)) // #nosec G404 -- reproducible test input
	if g := SplitIndex(nil, 10); len(g) != 1 || len(g[0]) != 0 {
		t.Fatalf("no packs: %v", g)
	}
	for round := 0; round < 300; round++ {
		packs := fakePacks(rng, rng.IntN(30), 12)
		limit := rng.IntN(20) - 2
		groups := SplitIndex(packs, limit)
		var flat []IndexPack
		for gi, g := range groups {
			if len(g) == 0 && len(packs) > 0 {
				t.Fatalf("empty group %d", gi)
			}
			n := 0
			for _, p := range g {
				n += len(p.Blobs)
			}
			if n > max(limit, 1) && len(g) > 1 {
				t.Fatalf("limit %d: group of %d packs holds %d blobs", limit, len(g), n)
			}
			// Greedy: the next group's first pack would not have fitted.
			if gi+1 < len(groups) && n+len(groups[gi+1][0].Blobs) <= max(limit, 1) {
				t.Fatalf("limit %d: group %d (%d blobs) cut early", limit, gi, n)
			}
			flat = append(flat, g...)
		}
		if len(flat) != len(packs) {
			t.Fatalf("%d packs in, %d out", len(packs), len(flat))
		}
		for i := range packs {
			if flat[i].ID != packs[i].ID || len(flat[i].Blobs) != len(packs[i].Blobs) {
				t.Fatalf("pack %d changed or moved", i)
			}
		}
	}
}

// crashingStorage fails every Save after the first n, as if the process
// had died there.
type crashingStorage struct {
	storage.Storage
	n int
}

var errCrashed = errors.New("simulated crash")

func (c *crashingStorage) Save(ctx context.Context, h storage.Handle, data []byte) error {
	if c.n == 0 {
		return errCrashed
	}
	c.n--
	return c.Storage.Save(ctx, h, data)
}

// indexedBlobs returns what LoadIndex sees: blob ID to the set of packs.
func indexedBlobs(t *testing.T, r *Repository) map[ID][]ID {
	t.Helper()
	if err := r.LoadIndex(context.Background()); err != nil {
		t.Fatal(err)
	}
	out := map[ID][]ID{}
	r.Index().Each(func(l BlobLocation, id ID) bool {
		if !slices.Contains(out[id], l.Pack) {
			out[id] = append(out[id], l.Pack)
		}
		return true
	})
	return out
}

func blobsOf(packs ...[]IndexPack) map[ID][]ID {
	out := map[ID][]ID{}
	for _, ps := range packs {
		for _, p := range ps {
			for _, e := range p.Blobs {
				if !slices.Contains(out[e.ID], p.ID) {
					out[e.ID] = append(out[e.ID], p.ID)
				}
			}
		}
	}
	return out
}

func sameBlobs(a, b map[ID][]ID) error {
	if len(a) != len(b) {
		return fmt.Errorf("%d blobs, want %d", len(a), len(b))
	}
	for id, pa := range a {
		pb := b[id]
		if len(pa) != len(pb) {
			return fmt.Errorf("blob %s in %d packs, want %d", id.Short(), len(pa), len(pb))
		}
		for _, p := range pa {
			if !slices.Contains(pb, p) {
				return fmt.Errorf("blob %s in pack %s unexpectedly", id.Short(), p.Short())
			}
		}
	}
	return nil
}

// TestSaveIndexSetCrashAtEveryStep replaces two index files by a set of
// several, stopping after each write in turn. Before the set's last file
// is stored, LoadIndex must still see every old listing (the parts only add
// duplicates of packs in the new set); after it, exactly the new set.
func TestSaveIndexSetCrashAtEveryStep(t *testing.T) {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(5, 6)) // #nosec G404 -- reproducible test input
	oldA, oldB := fakePacks(rng, 6, 8), fakePacks(rng, 5, 8)
	// The new set drops two packs and adds three (as prune does).
	newPacks := slices.Concat(oldA[2:], oldB, fakePacks(rng, 3, 8))
	const limit = 10
	parts := len(SplitIndex(newPacks, limit))
	if parts < 3 {
		t.Fatalf("only %d parts: the test needs a real split", parts)
	}
	for n := 0; n <= parts; n++ {
		st := mem.New()
		r, _, err := Init(ctx, st, InitOptions{Passphrase: []byte("pw"), KDF: keyring.KDFParams{Time: 1, MemoryKiB: 8 * 1024, Threads: 1}})
		if err != nil {
			t.Fatal(err)
		}
		ia, err := r.SaveIndexFile(ctx, &IndexFile{Packs: oldA})
		if err != nil {
			t.Fatal(err)
		}
		ib, err := r.SaveIndexFile(ctx, &IndexFile{Packs: oldB})
		if err != nil {
			t.Fatal(err)
		}
		r.st = &crashingStorage{Storage: st, n: n}
		ids, files, err := r.SaveIndexSet(ctx, []ID{ia, ib}, newPacks, limit)
		r.st = st
		if n < parts {
			if !errors.Is(err, errCrashed) || len(ids) != n || len(files) != n {
				t.Fatalf("crash after %d: %d files written, err %v", n, len(ids), err)
			}
			var written []IndexPack
			for _, f := range files {
				if len(f.Supersedes) != 0 {
					t.Fatalf("crash after %d: a part supersedes before the set is complete", n)
				}
				written = append(written, f.Packs...)
			}
			if err := sameBlobs(indexedBlobs(t, r), blobsOf(oldA, oldB, written)); err != nil {
				t.Fatalf("crash after %d of %d: %v", n, parts, err)
			}
			continue
		}
		if err != nil || len(ids) != parts {
			t.Fatalf("complete run: %d files, %v", len(ids), err)
		}
		for i, f := range files {
			blobs := 0
			for _, p := range f.Packs {
				blobs += len(p.Blobs)
			}
			if blobs > limit && len(f.Packs) > 1 {
				t.Fatalf("file %d holds %d blobs", i, blobs)
			}
			if (i == len(files)-1) != (len(f.Supersedes) == 2) {
				t.Fatalf("file %d of %d supersedes %d files", i+1, len(files), len(f.Supersedes))
			}
		}
		want := blobsOf(newPacks)
		if err := sameBlobs(indexedBlobs(t, r), want); err != nil {
			t.Fatalf("after the set: %v", err)
		}
		// Removing the superseded files changes nothing.
		for _, id := range []ID{ia, ib} {
			if err := st.Remove(ctx, storage.Handle{Kind: storage.KindIndex, Name: id.String()}); err != nil {
				t.Fatal(err)
			}
		}
		if err := sameBlobs(indexedBlobs(t, r), want); err != nil {
			t.Fatalf("after removing the old files: %v", err)
		}
	}
}
