package archiver

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/coffer-backup/coffer/internal/filter"
	"github.com/coffer-backup/coffer/internal/repository"
)

// TestExcludedDirReincludes: `--exclude /cache --exclude '!/cache/keep'`
// keeps /cache/keep. The backup reads the excluded directory, stores what
// is re-included with the directory's own metadata as its parent, and
// nothing else of it; an excluded directory with nothing re-included
// below is left out entirely, and one no "!" pattern reaches is not read.
func TestExcludedDirReincludes(t *testing.T) {
	t.Parallel()
	src := t.TempDir()
	write(t, filepath.Join(src, "plain"), "p")
	write(t, filepath.Join(src, "cache", "keep", "a"), "a")
	write(t, filepath.Join(src, "cache", "keep", "sub", "b"), "b")
	write(t, filepath.Join(src, "cache", "drop"), "d")
	write(t, filepath.Join(src, "cache", "other", "keep"), "not re-included: the pattern is anchored")
	write(t, filepath.Join(src, "empty", "x"), "excluded; its re-include pattern matches nothing")
	write(t, filepath.Join(src, "sealed", "x"), "excluded; no re-include pattern reaches it")
	if err := os.Chmod(filepath.Join(src, "cache"), 0o710); err != nil {
		t.Fatal(err)
	}
	// Unreadable: reading it would be reported as an error (unless root).
	if err := os.Chmod(filepath.Join(src, "sealed"), 0); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.Chmod(filepath.Join(src, "sealed"), 0o755) })
	m, err := filter.New([]string{
		src + "/cache", "!" + src + "/cache/keep",
		src + "/empty", "!" + src + "/empty/missing",
		src + "/sealed",
	})
	if err != nil {
		t.Fatal(err)
	}
	r := newRepo(t)
	ctx := context.Background()
	a := New(r, Options{Excludes: m})
	snap, err := a.Snapshot(ctx, []string{src})
	if err != nil {
		t.Fatal(err)
	}
	if errs := a.Errors(); len(errs) > 0 {
		t.Fatalf("source errors: %v", errs)
	}
	got := paths(t, r, snap, src)
	want := []string{"/cache", "/cache/keep", "/cache/keep/a", "/cache/keep/sub", "/cache/keep/sub/b", "/plain"}
	if !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	var cacheMode uint32
	err = r.Walk(ctx, snap.Tree, func(p string, n *repository.Node) error {
		if p == src+"/cache" {
			cacheMode = uint32(n.Mode) & 0o7777
		}
		return nil
	})
	if err != nil || cacheMode != 0o710 {
		t.Fatalf("excluded parent stored with mode %o (%v), want its own 0710", cacheMode, err)
	}

	// With the snapshot as parent, the re-included files are found in it
	// (the parent fast path goes through the excluded directory too).
	again, err := New(r, Options{Excludes: m, Parent: snap}).Snapshot(ctx, []string{src})
	if err != nil {
		t.Fatal(err)
	}
	if got := paths(t, r, again, src); !slices.Equal(got, want) {
		t.Fatalf("second backup: got %v, want %v", got, want)
	}
	if s := again.Summary; s.FilesUnmodified != 3 || s.FilesNew != 0 || s.FilesChanged != 0 {
		t.Fatalf("second backup: %d unmodified, %d new, %d changed files; want 3, 0, 0", s.FilesUnmodified, s.FilesNew, s.FilesChanged)
	}
}
