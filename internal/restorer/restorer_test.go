package restorer

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coffer-backup/coffer/internal/archiver"
	"github.com/coffer-backup/coffer/internal/filter"
	"github.com/coffer-backup/coffer/internal/keyring"
	"github.com/coffer-backup/coffer/internal/repository"
	"github.com/coffer-backup/coffer/internal/storage"
	"github.com/coffer-backup/coffer/internal/storage/mem"
)

func setup(t *testing.T, files map[string]string) (*repository.Repository, *repository.Snapshot, string) {
	t.Helper()
	ctx := context.Background()
	r, _, err := repository.Init(ctx, mem.New(), repository.InitOptions{
		Passphrase: []byte("pw"), KDF: keyring.KDFParams{Time: 1, MemoryKiB: 8 * 1024, Threads: 1}})
	if err != nil {
		t.Fatal(err)
	}
	src := t.TempDir()
	for p, c := range files {
		full := filepath.Join(src, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	s, err := archiver.New(r, archiver.Options{}).Snapshot(ctx, []string{src})
	if err != nil {
		t.Fatal(err)
	}
	return r, s, src
}

func TestResumeSkipsCorrectFiles(t *testing.T) {
	t.Parallel()
	r, s, src := setup(t, map[string]string{"a": "alpha", "b": string(bytes.Repeat([]byte("b"), 100000))})
	dst := t.TempDir()
	ctx := context.Background()
	if err := New(r, Options{Target: dst}).Restore(ctx, s.Tree); err != nil {
		t.Fatal(err)
	}
	// Damage one file; a second restore rewrites only that one.
	if err := os.WriteFile(filepath.Join(dst, src, "a"), []byte("ALPHA"), 0o644); err != nil {
		t.Fatal(err)
	}
	p := &Progress{}
	res := New(r, Options{Target: dst, Progress: p, Verify: true})
	if err := res.Restore(ctx, s.Tree); err != nil {
		t.Fatal(err)
	}
	if p.Skipped.Load() != 1 {
		t.Fatalf("skipped %d files, want 1", p.Skipped.Load())
	}
	if b, _ := os.ReadFile(filepath.Join(dst, src, "a")); string(b) != "alpha" {
		t.Fatalf("damaged file not repaired: %q", b)
	}
}

func TestPlantedSymlinkNotFollowed(t *testing.T) {
	t.Parallel()
	r, s, src := setup(t, map[string]string{"dir/f": "inside"})
	dst := t.TempDir()
	outside := t.TempDir()
	// An attacker plants a symlink where the restore will create a directory.
	if err := os.MkdirAll(filepath.Join(dst, filepath.Dir(src)), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dst, src), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(dst, src, "dir")); err != nil {
		t.Fatal(err)
	}
	if err := New(r, Options{Target: dst}).Restore(context.Background(), s.Tree); err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(outside); len(ents) != 0 {
		t.Fatalf("restore wrote outside the target through a symlink: %v", ents)
	}
	if b, err := os.ReadFile(filepath.Join(dst, src, "dir", "f")); err != nil || string(b) != "inside" {
		t.Fatalf("file not restored in place: %v", err)
	}
}

func TestIncludeFilter(t *testing.T) {
	t.Parallel()
	r, s, src := setup(t, map[string]string{"keep/a": "a", "skip/b": "b"})
	inc, err := filter.New([]string{src + "/keep"})
	if err != nil {
		t.Fatal(err)
	}
	dst := t.TempDir()
	res := New(r, Options{Target: dst, Include: inc})
	if err := res.Restore(context.Background(), s.Tree); err != nil {
		t.Fatal(err)
	}
	if u := res.UnmatchedIncludes(); len(u) != 0 {
		t.Fatalf("UnmatchedIncludes = %v, want none", u)
	}
	if _, err := os.Stat(filepath.Join(dst, src, "keep", "a")); err != nil {
		t.Fatalf("included file missing: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dst, src, "skip", "b")); err == nil {
		t.Fatal("excluded file restored")
	}
}

func TestHostileTreeRefused(t *testing.T) {
	t.Parallel()
	// A tree naming "..": DecodeTree refuses it, so nothing is written.
	ctx := context.Background()
	r, _, err := repository.Init(ctx, mem.New(), repository.InitOptions{
		Passphrase: []byte("pw"), KDF: keyring.KDFParams{Time: 1, MemoryKiB: 8 * 1024, Threads: 1}})
	if err != nil {
		t.Fatal(err)
	}
	r.StartWriting(ctx)
	bad := []byte(`{"nodes":[{"name":"Li4=","type":"file","mode":420,"uid":0,"gid":0,"mtime_ns":0,"atime_ns":0,"ctime_ns":0}]}`)
	id, _, err := r.SaveBlob(ctx, repository.TreeBlob, bad)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	dst := t.TempDir()
	res := New(r, Options{Target: filepath.Join(dst, "t")})
	_ = res.Restore(ctx, id)
	if len(res.Errors()) == 0 {
		t.Fatal("hostile tree not reported")
	}
	ents, err := os.ReadDir(dst)
	if err != nil || len(ents) != 1 || ents[0].Name() != "t" {
		t.Fatalf("restore wrote beside its target: %v %v", ents, err)
	}
	if inner, _ := os.ReadDir(filepath.Join(dst, "t")); len(inner) != 0 {
		t.Fatalf("hostile entries written: %v", inner)
	}
}

func TestUnmatchedIncludesNamed(t *testing.T) {
	t.Parallel()
	r, s, src := setup(t, map[string]string{"keep/a": "a"})
	inc, err := filter.New([]string{src + "/keep", "/nowhere", "!/nowhere/either"})
	if err != nil {
		t.Fatal(err)
	}
	res := New(r, Options{Target: t.TempDir(), Include: inc})
	if err := res.Restore(context.Background(), s.Tree); err != nil {
		t.Fatal(err)
	}
	if u := res.UnmatchedIncludes(); len(u) != 1 || u[0] != "/nowhere" {
		t.Fatalf("UnmatchedIncludes = %v, want [/nowhere]", u)
	}
}

func TestFailedFileIsRemoved(t *testing.T) {
	t.Parallel()
	r, s, src := setup(t, map[string]string{"big": string(bytes.Repeat([]byte("0123456789abcdef"), 1<<18)), "small": "x"})
	ctx := context.Background()
	// A fresh client, which has cached nothing.
	r, err := repository.Open(ctx, r.Storage(), []byte("pw"))
	if err != nil {
		t.Fatal(err)
	}
	if err := r.LoadIndex(ctx); err != nil {
		t.Fatal(err)
	}
	// Damage every data blob in its pack; the trees stay readable.
	var lost []repository.BlobLocation
	r.Index().Each(func(l repository.BlobLocation, _ repository.ID) bool {
		if l.Type == repository.DataBlob {
			lost = append(lost, l)
		}
		return true
	})
	if len(lost) == 0 {
		t.Fatal("no data blob indexed")
	}
	for _, l := range lost {
		h := storage.Handle{Kind: storage.KindData, Name: l.Pack.String()}
		b, err := r.Storage().Load(ctx, h, 0, -1)
		if err != nil {
			t.Fatal(err)
		}
		b[l.Offset+l.Length/2] ^= 1
		if err := r.Storage().Remove(ctx, h); err != nil {
			t.Fatal(err)
		}
		if err := r.Storage().Save(ctx, h, b); err != nil {
			t.Fatal(err)
		}
	}
	dst := t.TempDir()
	rs := New(r, Options{Target: dst})
	if err := rs.Restore(ctx, s.Tree); err != nil {
		t.Fatal(err)
	}
	errs := rs.Errors()
	if len(errs) != 2 {
		t.Fatalf("errors %v, want one per file", errs)
	}
	for _, e := range errs {
		if !strings.Contains(e.Err.Error(), "incomplete file was removed") {
			t.Errorf("error %v does not say the incomplete file was removed", e)
		}
	}
	for _, name := range []string{"big", "small"} {
		if _, err := os.Lstat(filepath.Join(dst, src, name)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s: a file that failed to restore was left behind (%v)", name, err)
		}
	}
}
