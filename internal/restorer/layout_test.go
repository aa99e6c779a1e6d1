package restorer

import (
	"context"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/coffer-backup/coffer/internal/archiver"
)

// TestHardlinksAcrossDirectories restores a link group whose members sit in
// several directories, some walked before the first copy's directory is
// written, and again over the restored tree (resume).
func TestHardlinksAcrossDirectories(t *testing.T) {
	t.Parallel()
	r, _, src := setup(t, map[string]string{"m/first": "shared content", "a/other": "x"})
	for _, l := range []string{"a/l1", "m/l2", "z/deep/l3"} {
		p := filepath.Join(src, l)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Link(filepath.Join(src, "m/first"), p); err != nil {
			t.Fatal(err)
		}
	}
	s, err := archiver.New(r, archiver.Options{}).Snapshot(context.Background(), []string{src})
	if err != nil {
		t.Fatal(err)
	}
	dst := t.TempDir()
	for round := range 2 {
		p := &Progress{}
		res := New(r, Options{Target: dst, Progress: p})
		if err := res.Restore(context.Background(), s.Tree); err != nil {
			t.Fatal(err)
		}
		if errs := res.Errors(); len(errs) != 0 {
			t.Fatalf("round %d: %v", round, errs)
		}
		var ino uint64
		for _, l := range []string{"a/l1", "m/first", "m/l2", "z/deep/l3"} {
			p := filepath.Join(dst, src, l)
			b, err := os.ReadFile(p)
			if err != nil || string(b) != "shared content" {
				t.Fatalf("round %d: %s: %q %v", round, l, b, err)
			}
			fi, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			st := fi.Sys().(*syscall.Stat_t)
			if ino == 0 {
				ino = st.Ino
			} else if st.Ino != ino {
				t.Fatalf("round %d: %s is not linked to the others", round, l)
			}
			if st.Nlink != 4 {
				t.Fatalf("round %d: %s has %d links, want 4", round, l, st.Nlink)
			}
		}
		if got, total := p.Files.Load(), p.TotalFiles.Load(); got != 5 || total != 5 {
			t.Fatalf("round %d: %d of %d files counted, want 5 of 5", round, got, total)
		}
	}
}

// TestManyDirectoriesAndAFlatOne restores a tree with many small
// directories and one large flat directory and compares every byte.
func TestManyDirectoriesAndAFlatOne(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewSource(1))
	files := map[string]string{}
	for d := range 40 {
		for f := range 15 {
			files[fmt.Sprintf("d%02d/sub%d/f%02d", d, f%3, f)] = randString(rng)
		}
	}
	for f := range 600 {
		files[fmt.Sprintf("flat/f%04d", f)] = randString(rng)
	}
	r, s, src := setup(t, files)
	dst := t.TempDir()
	p := &Progress{}
	res := New(r, Options{Target: dst, Progress: p, Workers: 3})
	if err := res.Restore(context.Background(), s.Tree); err != nil {
		t.Fatal(err)
	}
	if errs := res.Errors(); len(errs) != 0 {
		t.Fatal(errs)
	}
	if got := p.Files.Load(); got != uint64(len(files)) || p.TotalFiles.Load() != got {
		t.Fatalf("%d of %d files restored, want %d", got, p.TotalFiles.Load(), len(files))
	}
	var size uint64
	for _, c := range files {
		size += uint64(len(c))
	}
	if p.Bytes.Load() != size || p.TotalBytes.Load() != size {
		t.Fatalf("%d of %d bytes restored, want %d", p.Bytes.Load(), p.TotalBytes.Load(), size)
	}
	for name, want := range files {
		b, err := os.ReadFile(filepath.Join(dst, src, name))
		if err != nil || string(b) != want {
			t.Fatalf("%s: %d bytes, %v", name, len(b), err)
		}
	}
}

func randString(rng *rand.Rand) string {
	b := make([]byte, rng.Intn(3000))
	for i := range b {
		b[i] = byte('a' + rng.Intn(rng.Intn(26)+1))
	}
	return string(b)
}
