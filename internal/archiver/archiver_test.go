package archiver

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/coffer-backup/coffer/internal/filter"
	"github.com/coffer-backup/coffer/internal/keyring"
	"github.com/coffer-backup/coffer/internal/repository"
	"github.com/coffer-backup/coffer/internal/storage/mem"
)

func newRepo(t *testing.T) *repository.Repository {
	t.Helper()
	r, _, err := repository.Init(context.Background(), mem.New(), repository.InitOptions{
		Passphrase: []byte("pw"), KDF: keyring.KDFParams{Time: 1, MemoryKiB: 8 * 1024, Threads: 1}})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func write(t *testing.T, p, s string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

func paths(t *testing.T, r *repository.Repository, s *repository.Snapshot, under string) []string {
	t.Helper()
	var out []string
	err := r.Walk(context.Background(), s.Tree, func(p string, n *repository.Node) error {
		if len(p) > len(under) && p[:len(under)] == under {
			out = append(out, p[len(under):])
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

func TestExcludes(t *testing.T) {
	t.Parallel()
	src := t.TempDir()
	write(t, filepath.Join(src, "keep.txt"), "k")
	write(t, filepath.Join(src, "drop.tmp"), "d")
	write(t, filepath.Join(src, "cache", "CACHEDIR.TAG"), "Signature: 8a477f597d28d172789f06886806bc55\n")
	write(t, filepath.Join(src, "cache", "blob"), "c")
	write(t, filepath.Join(src, "marked", ".nobackup"), "")
	write(t, filepath.Join(src, "marked", "x"), "m")
	write(t, filepath.Join(src, "sub", "y.tmp"), "y")
	write(t, filepath.Join(src, "sub", "z"), "z")
	m, err := filter.New([]string{"*.tmp"})
	if err != nil {
		t.Fatal(err)
	}
	r := newRepo(t)
	ctx := context.Background()
	a := New(r, Options{Excludes: m, ExcludeCaches: true, ExcludeIfPresent: []string{".nobackup"}})
	snap, err := a.Snapshot(ctx, []string{src})
	if err != nil {
		t.Fatal(err)
	}
	got := paths(t, r, snap, src)
	want := []string{"/keep.txt", "/sub", "/sub/z"}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("got %v, want %v", got, want)
		}
	}
}

func TestParentFastPathAndChanges(t *testing.T) {
	t.Parallel()
	src := t.TempDir()
	write(t, filepath.Join(src, "a"), "one")
	write(t, filepath.Join(src, "b"), "two")
	r := newRepo(t)
	ctx := context.Background()
	s1, err := New(r, Options{}).Snapshot(ctx, []string{src})
	if err != nil {
		t.Fatal(err)
	}
	s1.ID = repository.NewRandomID()
	write(t, filepath.Join(src, "b"), "changed")
	a := New(r, Options{Parent: s1})
	s2, err := a.Snapshot(ctx, []string{src})
	if err != nil {
		t.Fatal(err)
	}
	if s2.Summary.FilesUnmodified != 1 || s2.Summary.FilesChanged != 1 {
		t.Fatalf("summary %+v", s2.Summary)
	}
	n, err := r.FindNode(ctx, s2.Tree, src+"/b")
	if err != nil || n == nil {
		t.Fatalf("node b: %v", err)
	}
	data, err := r.LoadBlob(ctx, repository.DataBlob, *n.Content[0].ID)
	if err != nil || string(data) != "changed" {
		t.Fatalf("changed file stored as %q: %v", data, err)
	}
}

func TestUnreadableDirectoryReported(t *testing.T) {
	t.Parallel()
	if os.Getuid() == 0 {
		t.Skip("root reads everything; the CLI test covers this with an unprivileged user")
	}
	src := t.TempDir()
	write(t, filepath.Join(src, "locked", "f"), "x")
	if err := os.Chmod(filepath.Join(src, "locked"), 0); err != nil {
		t.Fatal(err)
	}
	defer os.Chmod(filepath.Join(src, "locked"), 0o755)
	a := New(newRepo(t), Options{})
	if _, err := a.Snapshot(context.Background(), []string{src}); err != nil {
		t.Fatal(err)
	}
	if len(a.Errors()) == 0 {
		t.Fatal("unreadable directory not reported")
	}
}

func TestMissingSourceReportedRestBackedUp(t *testing.T) {
	t.Parallel()
	src := t.TempDir()
	write(t, filepath.Join(src, "here", "f"), "x")
	missing := filepath.Join(src, "gone")
	r := newRepo(t)
	a := New(r, Options{})
	s, err := a.Snapshot(context.Background(), []string{filepath.Join(src, "here"), missing})
	if err != nil {
		t.Fatal(err)
	}
	errs := a.Errors()
	if len(errs) != 1 || errs[0].Path != missing || !errors.Is(errs[0].Err, os.ErrNotExist) {
		t.Fatalf("errors %v, want %s reported as missing", errs, missing)
	}
	if got := paths(t, r, s, src); !slices.Equal(got, []string{"/here", "/here/f"}) {
		t.Fatalf("snapshot holds %v", got)
	}
	if !slices.Contains(s.Paths, missing) {
		t.Fatalf("paths %v do not record %s (the next backup would find no parent)", s.Paths, missing)
	}

	_, err = New(r, Options{}).Snapshot(context.Background(), []string{missing})
	if !errors.Is(err, ErrNoSources) || !strings.Contains(err.Error(), missing) {
		t.Fatalf("all sources missing: %v, want ErrNoSources naming %s", err, missing)
	}
}
