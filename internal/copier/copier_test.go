package copier_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/coffer-backup/coffer/internal/chunker"
	"github.com/coffer-backup/coffer/internal/copier"
	"github.com/coffer-backup/coffer/internal/keyring"
	"github.com/coffer-backup/coffer/internal/repository"
	"github.com/coffer-backup/coffer/internal/storage/mem"
)

func snap(id byte, original *repository.ID) *repository.Snapshot {
	return &repository.Snapshot{ID: repository.ID{id}, Tree: repository.ID{0xff}, Original: original, Time: time.Unix(int64(id), 0)}
}

func TestPlan(t *testing.T) {
	a1, a2, a3 := snap(1, nil), snap(2, nil), snap(3, nil)
	orig := repository.ID{9}
	a4 := snap(4, &orig)             // itself a copy of 9
	b1 := snap(11, &a1.ID)           // b copies a1
	b9 := snap(9, nil)               // 9 lives in b: a4 came from there
	old := repository.ID{0x33}       // a3's ID before a rewrite
	b3 := snap(13, &old)             // b copied a3 before it was re-sealed
	a5 := snap(5, &repository.ID{9}) // a second copy of 9 in a
	todo, skip := copier.Plan([]*repository.Snapshot{a1, a2, a3, a4, a5}, []*repository.Snapshot{b1, b9, b3},
		map[repository.ID][]repository.ID{a3.ID: {old}})
	if len(todo) != 1 || todo[0] != a2 {
		t.Errorf("todo = %v, want only a2", todo)
	}
	want := map[repository.ID]repository.ID{a1.ID: b1.ID, a3.ID: b3.ID, a4.ID: b9.ID, a5.ID: b9.ID}
	if len(skip) != len(want) {
		t.Fatalf("skip = %v", skip)
	}
	for _, s := range skip {
		if want[s.Source.ID] != s.Existing {
			t.Errorf("%s skipped as held by %s, want %s", s.Source.ID.Short(), s.Existing.Short(), want[s.Source.ID].Short())
		}
	}
	// Two copies of one snapshot in the source are copied once.
	todo, _ = copier.Plan([]*repository.Snapshot{a4, a5}, nil, nil)
	if len(todo) != 1 {
		t.Errorf("two copies of one original: todo %d, want 1", len(todo))
	}
}

func newRepo(t *testing.T, o repository.InitOptions) *repository.Repository {
	t.Helper()
	o.Passphrase = []byte("pw")
	o.KDF = keyring.KDFParams{Time: 1, MemoryKiB: 8 * 1024, Threads: 1}
	r, _, err := repository.Init(context.Background(), mem.New(), o)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// fileContent reads a file's content back from its repository.
func fileContent(t *testing.T, r *repository.Repository, items []repository.ContentItem) []byte {
	t.Helper()
	var out []byte
	for _, it := range items {
		if it.ID == nil {
			out = append(out, make([]byte, it.Hole)...)
			continue
		}
		b, err := r.LoadBlob(context.Background(), repository.DataBlob, *it.ID)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b...)
	}
	return out
}

// TestCopyRechunksOrCopies stores one file with a hole in a source tree,
// copies it to a target with other keys (re-chunked) and to one sharing
// the source's keys (copied as is), and reads it back from both.
func TestCopyRechunksOrCopies(t *testing.T) {
	ctx := context.Background()
	small := chunker.Params{Min: 64 << 10, Avg: 256 << 10, Max: 1 << 20}
	src := newRepo(t, repository.InitOptions{Chunker: small})
	data := make([]byte, 3<<20)
	for i := range data {
		data[i] = byte(i*7 + i/1000)
	}
	src.StartWriting(ctx)
	var items []repository.ContentItem
	ch := chunker.New(bytes.NewReader(data), src.ChunkerSecret(), small)
	for {
		c, err := ch.Next(nil)
		if err != nil {
			break
		}
		id, _, err := src.SaveBlob(ctx, repository.DataBlob, c)
		if err != nil {
			t.Fatal(err)
		}
		items = append(items, repository.ContentItem{ID: &id, Size: uint64(len(c))})
	}
	items = append(items, repository.ContentItem{Hole: 1 << 20})
	want := append(append([]byte(nil), data...), make([]byte, 1<<20)...)
	tree := &repository.Tree{Nodes: []*repository.Node{{Name: []byte("f"), Content: items}}}
	tree.Nodes[0].Type, tree.Nodes[0].Size = "file", int64(len(want))
	root, err := src.SaveTree(ctx, tree)
	if err != nil {
		t.Fatal(err)
	}
	if err := src.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	s := &repository.Snapshot{ID: repository.ID{7}, Tree: root, Hostname: "h", Parent: &repository.ID{6}}

	for name, dst := range map[string]*repository.Repository{
		"rechunk": newRepo(t, repository.InitOptions{}),
		"shared":  newRepo(t, repository.InitOptions{Shared: src.ShareKeys(), Chunker: small}),
	} {
		t.Run(name, func(t *testing.T) {
			c := copier.New(src, dst, nil)
			if c.Rechunk != (name == "rechunk") {
				t.Fatalf("Rechunk = %v", c.Rechunk)
			}
			out, err := c.Copy(ctx, s)
			if err != nil {
				t.Fatal(err)
			}
			if out.Original == nil || *out.Original != s.ID || out.Parent != nil || out.Hostname != "h" {
				t.Errorf("copied snapshot %+v: want original %s, no parent, the same host", out, s.ID.Short())
			}
			if (out.Tree == root) == c.Rechunk {
				t.Errorf("tree %s for source tree %s (rechunk %v)", out.Tree.Short(), root.Short(), c.Rechunk)
			}
			got, err := dst.LoadTree(ctx, out.Tree)
			if err != nil {
				t.Fatal(err)
			}
			if back := fileContent(t, dst, got.Nodes[0].Content); !bytes.Equal(back, want) {
				t.Fatalf("file read back from the copy differs (%d bytes, want %d)", len(back), len(want))
			}
			// Copying again adds nothing.
			before := dst.Stats()
			if _, err := copier.New(src, dst, nil).Copy(ctx, s); err != nil {
				t.Fatal(err)
			}
			if after := dst.Stats(); after.Packs != before.Packs || after.BytesRaw != before.BytesRaw {
				t.Errorf("a second copy wrote %+v after %+v", after, before)
			}
		})
	}
}
