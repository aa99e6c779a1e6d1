package local

import (
	"fmt"
	"path/filepath"
	"testing"

	"github.com/coffer-backup/coffer/internal/storage"
)

func benchRepo(b *testing.B) *Local {
	b.Helper()
	l, err := Create(filepath.Join(b.TempDir(), "repo"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = l.Close() })
	return l
}

// BenchmarkSave writes small index objects and packs spread over shards:
// the cost of path resolution next to the fsyncs every Save makes.
func BenchmarkSave(b *testing.B) {
	for _, kind := range []storage.Kind{storage.KindIndex, storage.KindData} {
		b.Run(string(kind), func(b *testing.B) {
			l := benchRepo(b)
			data := make([]byte, 4<<10)
			b.SetBytes(int64(len(data)))
			i := 0
			for b.Loop() {
				if err := l.Save(ctx, storage.Handle{Kind: kind, Name: packName(i)}, data); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}

// BenchmarkLoad reads small ranges of packs (kept open by the file cache)
// and whole small objects (opened every time).
func BenchmarkLoad(b *testing.B) {
	l := benchRepo(b)
	const n = 32
	data := make([]byte, 64<<10)
	for i := range n {
		for _, k := range []storage.Kind{storage.KindData, storage.KindSnapshots} {
			if err := l.Save(ctx, storage.Handle{Kind: k, Name: packName(i)}, data); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Run("pack-range", func(b *testing.B) {
		i := 0
		for b.Loop() {
			if _, err := l.Load(ctx, storage.Handle{Kind: storage.KindData, Name: packName(i % n)}, 4096, 4096); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
	b.Run("object-whole", func(b *testing.B) {
		i := 0
		for b.Loop() {
			if _, err := l.Load(ctx, storage.Handle{Kind: storage.KindSnapshots, Name: packName(i % n)}, 0, -1); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
	b.Run("stat", func(b *testing.B) {
		i := 0
		for b.Loop() {
			if _, err := l.Stat(ctx, storage.Handle{Kind: storage.KindData, Name: packName(i % n)}); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
	b.Run("list-data", func(b *testing.B) {
		for b.Loop() {
			c := 0
			if err := l.List(ctx, storage.KindData, func(storage.FileInfo) error { c++; return nil }); err != nil || c != n {
				b.Fatal(fmt.Sprint(c, err))
			}
		}
	})
}
