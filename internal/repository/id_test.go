package repository

import (
	"bytes"
	"testing"

	"github.com/coffer-backup/coffer/internal/crypto"
	"github.com/zeebo/blake3"
)

// TestBlobHasherReuse checks that pooled, reset hashers give the same keyed
// hash as a fresh one, in any order of use.
func TestBlobHasherReuse(t *testing.T) {
	k, _ := crypto.NewRandomKey()
	h := NewBlobHasher(k)
	for i := 0; i < 200; i++ {
		data := bytes.Repeat([]byte{byte(i)}, i*37)
		fresh, err := blake3.NewKeyed(k[:])
		if err != nil {
			t.Fatal(err)
		}
		_, _ = fresh.Write(data)
		var want ID
		fresh.Sum(want[:0])
		if got := h.Sum(data); got != want {
			t.Fatalf("input %d: pooled hasher gives %s, fresh %s", i, got.Short(), want.Short())
		}
	}
	other, _ := crypto.NewRandomKey()
	if NewBlobHasher(other).Sum([]byte("x")) == h.Sum([]byte("x")) {
		t.Fatal("different keys give the same ID")
	}
}
