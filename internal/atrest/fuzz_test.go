package atrest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"testing"
	"time"

	"github.com/coffer-backup/coffer/internal/storage"
	"github.com/coffer-backup/coffer/internal/storage/mem"
)

func FuzzParseHeader(f *testing.F) {
	good := (&header{Size: 5, Received: time.Unix(1, 2)}).encode(make([]byte, 32), identity("a", "b", "data", "c"))
	f.Add(good)
	f.Add(good[:HeaderSize-1])
	f.Add(bytes.Repeat([]byte{0xff}, HeaderSize))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := parseHeader(b)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v does not wrap ErrCorrupt", err)
			}
			return
		}
		if h.Size < 0 || h.Size > 1<<62 {
			t.Fatalf("size %d accepted", h.Size)
		}
		// What parses re-encodes to the same fixed fields.
		again := h.encode(make([]byte, 32), nil)
		if !bytes.Equal(again[:macOffset], b[:macOffset]) {
			t.Fatalf("re-encoded header differs")
		}
	})
}

// FuzzOpen stores arbitrary bytes as an object: opening and reading it
// never panics, and nothing but the genuine object opens.
func FuzzOpen(f *testing.F) {
	ctx := context.Background()
	var key Key
	st := New(mem.New(), &key, Namespace{Client: "a", Repo: "b"})
	h := storage.Handle{Kind: storage.KindData, Name: "x"}
	if err := st.Save(ctx, h, []byte("hello")); err != nil {
		f.Fatal(err)
	}
	sealed, err := st.base.Load(ctx, h, 0, -1)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(sealed)
	f.Add(sealed[:HeaderSize])
	f.Fuzz(func(t *testing.T, b []byte) {
		base := mem.New()
		s := New(base, &key, Namespace{Client: "a", Repo: "b"})
		if err := base.Save(ctx, h, b); err != nil {
			t.Fatal(err)
		}
		got, err := s.Load(ctx, h, 0, -1)
		if err == nil && string(got) != "hello" {
			sum := sha256.Sum256(got)
			t.Fatalf("forged object opened: %d bytes, %x", len(got), sum)
		}
	})
}
