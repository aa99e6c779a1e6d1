package repository

import (
	"runtime"
	"testing"
)

// TestIndexMemoryPerBlob measures the in-memory index on a million blobs:
// docs/format.md promises under 64 bytes per blob (restic needs ~350).
func TestIndexMemoryPerBlob(t *testing.T) {
	if testing.Short() {
		t.Skip("allocates a million-blob index")
	}
	const blobs = 1 << 20
	f := &IndexFile{}
	for p := 0; p < blobs/64; p++ {
		ip := IndexPack{ID: NewRandomID(), Blobs: make([]PackEntry, 64)}
		for j := range ip.Blobs {
			ip.Blobs[j] = PackEntry{Type: DataBlob, ID: NewRandomID(), Offset: uint32(j), Length: 100, RawLen: 90}
		}
		f.Packs = append(f.Packs, ip)
	}
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	m := NewMasterIndex()
	m.AddFiles([]*IndexFile{f})
	runtime.GC()
	runtime.ReadMemStats(&after)
	per := float64(after.HeapAlloc-before.HeapAlloc) / blobs
	t.Logf("index memory: %.1f bytes per blob over %d blobs", per, blobs)
	if per > 64 {
		t.Fatalf("index uses %.1f bytes per blob, more than 64", per)
	}
	if !m.Has(BlobHandle{Type: DataBlob, ID: f.Packs[7].Blobs[3].ID}) {
		t.Fatal("lookup failed")
	}
	runtime.KeepAlive(f)
}
