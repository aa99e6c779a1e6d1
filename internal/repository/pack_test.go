package repository

import (
	"bytes"
	"crypto/rand"
	"errors"
	"testing"

	"github.com/coffer-backup/coffer/internal/compress"
	"github.com/coffer-backup/coffer/internal/crypto"
	"github.com/coffer-backup/coffer/internal/padding"
)

func testKeys(t testing.TB) (crypto.KeyLookup, crypto.Key, []byte, *BlobHasher) {
	t.Helper()
	k, err := crypto.NewRandomKey()
	if err != nil {
		t.Fatal(err)
	}
	hk, _ := crypto.NewRandomKey()
	repoID := bytes.Repeat([]byte{7}, 32)
	lookup := func(term uint32) (crypto.Key, error) {
		if term != 1 {
			return crypto.Key{}, errors.New("unknown term")
		}
		return k, nil
	}
	return lookup, k, repoID, NewBlobHasher(hk)
}

func randBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

func buildPack(t testing.TB, blobs [][]byte) (ID, []byte, []PackEntry, crypto.KeyLookup, []byte, *BlobHasher) {
	lookup, k, repoID, h := testKeys(t)
	w, err := NewPackWriter(crypto.AES256GCM, 1, k, repoID, compress.Auto)
	if err != nil {
		t.Fatal(err)
	}
	for i, b := range blobs {
		typ := DataBlob
		if i%3 == 2 {
			typ = TreeBlob
		}
		if err := w.Add(typ, h.Sum(b), b); err != nil {
			t.Fatal(err)
		}
	}
	data, entries, err := w.Finish()
	if err != nil {
		t.Fatal(err)
	}
	return w.ID, data, entries, lookup, repoID, h
}

func TestPackRoundTrip(t *testing.T) {
	blobs := [][]byte{randBytes(1000), bytes.Repeat([]byte("compressible "), 5000), {}, randBytes(70000), []byte("x")}
	id, data, entries, lookup, repoID, h := buildPack(t, blobs)
	if got, want := int64(len(data)), padding.Padme(int64(len(data))); got != want {
		t.Errorf("pack length %d is not a Padmé length (%d)", got, want)
	}
	if err := VerifyPack(id, data, lookup, repoID, h, entries); err != nil {
		t.Fatalf("verify: %v", err)
	}
	r, err := NewPackReader(id, data[:crypto.HeaderSize], lookup, repoID)
	if err != nil {
		t.Fatal(err)
	}
	dir, err := r.ParseDirectory(data, int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	found := map[ID][]byte{}
	for _, e := range dir {
		p, err := r.OpenBlob(e, data[e.Offset:e.Offset+e.Length])
		if err != nil {
			t.Fatal(err)
		}
		found[e.ID] = p
	}
	for _, b := range blobs {
		if got, ok := found[h.Sum(b)]; !ok || !bytes.Equal(got, b) {
			t.Fatalf("blob of %d bytes not recovered", len(b))
		}
	}
	// The compressible blob must have been stored compressed.
	for _, e := range dir {
		if e.RawLen == uint32(len(blobs[1])) && e.Length >= e.RawLen {
			t.Errorf("compressible blob stored with %d bytes for %d", e.Length, e.RawLen)
		}
	}
}

func TestPackEveryBitFlipDetected(t *testing.T) {
	id, data, entries, lookup, repoID, h := buildPack(t, [][]byte{randBytes(300), randBytes(200)})
	for i := 0; i < len(data); i += 7 {
		bad := bytes.Clone(data)
		bad[i] ^= 0x10
		if err := VerifyPack(id, bad, lookup, repoID, h, entries); err == nil {
			t.Fatalf("bit flip at byte %d of %d not detected", i, len(data))
		}
	}
	for n := 0; n < len(data); n += 13 {
		if err := VerifyPack(id, data[:n], lookup, repoID, h, nil); err == nil {
			t.Fatalf("truncation to %d bytes not detected", n)
		}
	}
}

func TestPackBoundToNameAndRepository(t *testing.T) {
	id, data, entries, lookup, repoID, h := buildPack(t, [][]byte{randBytes(300)})
	other := NewRandomID()
	if err := VerifyPack(other, data, lookup, repoID, h, entries); err == nil {
		t.Fatal("pack opened under another name")
	}
	if err := VerifyPack(id, data, lookup, bytes.Repeat([]byte{8}, 32), h, entries); err == nil {
		t.Fatal("pack opened in another repository")
	}
}

func TestIndexFileRoundTrip(t *testing.T) {
	f := &IndexFile{Supersedes: []ID{NewRandomID()}}
	for p := 0; p < 3; p++ {
		ip := IndexPack{ID: NewRandomID()}
		for b := 0; b < 5; b++ {
			ip.Blobs = append(ip.Blobs, PackEntry{Type: DataBlob, ID: NewRandomID(), Offset: uint32(100 * b), Length: 50, RawLen: 60})
		}
		f.Packs = append(f.Packs, ip)
	}
	g, err := DecodeIndexFile(f.Encode())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(g.Encode(), f.Encode()) {
		t.Fatal("index round trip differs")
	}
	m := NewMasterIndex()
	m.AddFiles([]*IndexFile{g})
	for _, p := range f.Packs {
		for _, e := range p.Blobs {
			locs := m.Lookup(BlobHandle{Type: e.Type, ID: e.ID})
			if len(locs) != 1 || locs[0].Pack != p.ID || locs[0].Offset != e.Offset {
				t.Fatalf("lookup of %s: %+v", e.ID.Short(), locs)
			}
		}
	}
	if m.Has(BlobHandle{Type: TreeBlob, ID: f.Packs[0].Blobs[0].ID}) {
		t.Fatal("blob found under the wrong type")
	}
	m.Exclude([]ID{f.Packs[0].ID})
	if m.Has(BlobHandle{Type: DataBlob, ID: f.Packs[0].Blobs[0].ID}) {
		t.Fatal("blob of an excluded pack offered for dedup")
	}
}

func TestIndexRecordSize(t *testing.T) {
	// docs/format.md promises under 64 bytes of index memory per blob.
	if s := sizeofRecord(); s > 64 {
		t.Fatalf("index record is %d bytes", s)
	}
}

func FuzzDecodeIndexFile(f *testing.F) {
	ff := &IndexFile{Packs: []IndexPack{{ID: NewRandomID(), Blobs: []PackEntry{{Type: DataBlob, ID: NewRandomID(), Offset: 44, Length: 40, RawLen: 10}}}}}
	f.Add(ff.Encode())
	f.Add([]byte{1, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Add([]byte{1, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		g, err := DecodeIndexFile(b)
		if err != nil {
			return
		}
		if !bytes.Equal(g.Encode(), b) {
			t.Fatal("decode/encode not stable")
		}
	})
}

func FuzzParsePack(f *testing.F) {
	lookup, k, repoID, h := testKeys(f)
	w, _ := NewPackWriter(crypto.AES256GCM, 1, k, repoID, compress.Auto)
	b := []byte("hello world")
	_ = w.Add(DataBlob, h.Sum(b), b)
	data, _, _ := w.Finish()
	id := w.ID
	f.Add(data)
	f.Add(data[:50])
	f.Fuzz(func(t *testing.T, data []byte) {
		_ = VerifyPack(id, data, lookup, repoID, h, nil)
	})
}
