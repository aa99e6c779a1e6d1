package maintenance

import (
	"bytes"
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/coffer-backup/coffer/internal/maintenance/repotest"
	"github.com/coffer-backup/coffer/internal/repository"
	"github.com/coffer-backup/coffer/internal/storage/mem"
)

func TestStats(t *testing.T) {
	t.Parallel()
	st := mem.New()
	repotest.Init(t, st)
	rng := rand.New(rand.NewPCG(41, 42))
	src := t.TempDir()
	repotest.WriteFile(t, filepath.Join(src, "random"), 300<<10, rng)
	zeros := bytes.Repeat([]byte("compressible "), 30000)
	if err := os.WriteFile(filepath.Join(src, "text"), zeros, 0o644); err != nil {
		t.Fatal(err)
	}
	s1 := repotest.Backup(t, st, []string{src})
	s2 := repotest.Backup(t, st, []string{src})
	r := repotest.Open(t, st)

	one, err := Stats(context.Background(), r, []*repository.Snapshot{s1})
	if err != nil {
		t.Fatal(err)
	}
	two, err := Stats(context.Background(), r, []*repository.Snapshot{s1, s2})
	if err != nil {
		t.Fatal(err)
	}
	size := uint64(300<<10 + len(zeros))
	if one.Files != 2 || one.RestoreSize != size || one.Snapshots != 1 {
		t.Fatalf("one snapshot: %+v", one)
	}
	// Restore size counts every snapshot; raw data counts unique blobs once
	// (the second snapshot adds only new trees: directory times differ).
	if two.Files != 4 || two.RestoreSize != 2*size || two.DataBlobs != one.DataBlobs || two.RawSize > one.RawSize+(64<<10) {
		t.Fatalf("two snapshots: %+v vs %+v", two, one)
	}
	if one.RawSize < size || one.StoredSize == 0 || one.StoredSize >= one.RawSize || one.CompressionRatio <= 1 {
		t.Fatalf("raw/stored: %+v", one)
	}
	if one.MissingBlobs != 0 || one.TreeBlobs == 0 {
		t.Fatalf("%+v", one)
	}
}
