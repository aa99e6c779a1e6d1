package repository

import (
	"testing"

	"github.com/coffer-backup/coffer/internal/compress"
	"github.com/coffer-backup/coffer/internal/crypto"
)

// TestPackSpillRoundTrip builds packs whose blobs straddle the spill read
// chunks in every way (tiny, chunk-sized, several chunks long), then checks
// every blob opens at its entry's offset and that the layout is shuffled.
func TestPackSpillRoundTrip(t *testing.T) {
	sizes := []int{1, spillBufSize - crypto.Overhead - 1, 17, 3*spillBufSize + 5, 0, 1000, spillBufSize, 2}
	for range 40 {
		sizes = append(sizes, 100)
	}
	blobs := make([][]byte, len(sizes))
	for i, n := range sizes {
		blobs[i] = randBytes(n)
	}
	inOrder := 0
	for round := range 3 {
		id, data, entries, lookup, repoID, h := buildPack(t, blobs)
		if err := VerifyPack(id, data, lookup, repoID, h, entries); err != nil {
			t.Fatal(err)
		}
		r, err := NewPackReader(id, data[:crypto.HeaderSize], lookup, repoID)
		if err != nil {
			t.Fatal(err)
		}
		pos := map[ID]int{}
		for k, e := range entries {
			p, err := r.OpenBlob(e, data[e.Offset:e.Offset+e.Length])
			if err != nil {
				t.Fatalf("round %d entry %d: %v", round, k, err)
			}
			if h.Sum(p) != e.ID {
				t.Fatalf("round %d entry %d: wrong content", round, k)
			}
			pos[e.ID] = k
		}
		sorted := true
		for i := 1; i < len(blobs); i++ {
			if pos[h.Sum(blobs[i])] < pos[h.Sum(blobs[i-1])] {
				sorted = false
			}
		}
		if sorted {
			inOrder++
		}
	}
	if inOrder == 3 {
		t.Error("blobs laid out in arrival order three times: not shuffled")
	}
}

func TestPackWriterFinishedRefusesMore(t *testing.T) {
	lookup, k, repoID, h := testKeys(t)
	w, err := NewPackWriter(crypto.AES256GCM, 1, k, repoID, compress.Off)
	if err != nil {
		t.Fatal(err)
	}
	b := []byte("blob")
	if err := w.Add(DataBlob, h.Sum(b), b); err != nil {
		t.Fatal(err)
	}
	if _, _, err := w.Finish(); err != nil {
		t.Fatal(err)
	}
	if err := w.Add(DataBlob, h.Sum(b), b); err == nil {
		t.Fatal("Add after Finish succeeded")
	}
	if _, _, err := w.Finish(); err == nil {
		t.Fatal("second Finish succeeded")
	}
	// An empty pack still finishes into a valid, verifiable pack.
	e, err := NewPackWriter(crypto.AES256GCM, 1, k, repoID, compress.Off)
	if err != nil {
		t.Fatal(err)
	}
	data, entries, err := e.Finish()
	if err != nil || len(entries) != 0 {
		t.Fatalf("empty pack: %v, %d entries", err, len(entries))
	}
	if err := VerifyPack(e.ID, data, lookup, repoID, h, entries); err != nil {
		t.Fatalf("empty pack does not verify: %v", err)
	}
}
