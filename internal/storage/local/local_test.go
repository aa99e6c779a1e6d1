package local

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/coffer-backup/coffer/internal/atomicfile"
	"github.com/coffer-backup/coffer/internal/storage"
	"github.com/coffer-backup/coffer/internal/storage/storagetest"
)

func newRepo(t *testing.T) *Local {
	t.Helper()
	l, err := Create(filepath.Join(t.TempDir(), "repo"))
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestContract(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storage.Storage { return newRepo(t) })
}

// TestContractLinkFallback runs the suite on the path taken by filesystems
// that refuse RENAME_NOREPLACE.
func TestContractLinkFallback(t *testing.T) {
	orig := publishFile
	publishFile = atomicfile.PublishLinkAt
	t.Cleanup(func() { publishFile = orig })
	storagetest.Run(t, func(t *testing.T) storage.Storage {
		l := newRepo(t)
		t.Cleanup(func() {
			if tmps := tempFiles(t, l.dir); len(tmps) != 0 {
				t.Errorf("link fallback left temporary files: %v", tmps)
			}
		})
		return l
	})
}

var ctx = context.Background()

func save(t *testing.T, l *Local, k storage.Kind, name string, data []byte) {
	t.Helper()
	if err := l.Save(ctx, storage.Handle{Kind: k, Name: name}, data); err != nil {
		t.Fatal(err)
	}
}

// tempFiles returns every ".tmp-" file under dir.
func tempFiles(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if strings.HasPrefix(d.Name(), tempPrefix) {
			out = append(out, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestLayoutAndModes(t *testing.T) {
	l := newRepo(t)
	save(t, l, storage.KindConfig, "config", []byte("cfg"))
	save(t, l, storage.KindData, "abcdef", []byte("pack"))
	save(t, l, storage.KindData, "z", []byte("short name"))
	save(t, l, storage.KindIndex, "idx1", []byte("index"))

	wantFiles := map[string]string{
		"config":           "cfg",
		"data/ab/abcdef":   "pack",
		"data/z/z":         "short name",
		"index/idx1":       "index",
		"snapshots":        "",
		"keys":             "",
		"keyring":          "",
		"locks":            "",
		"forgets":          "",
		"condemned":        "",
		"data":             "",
		"data/ab":          "",
		"data/z":           "",
		"index":            "",
		"../repo/config":   "cfg",
		"./index/../index": "",
	}
	for rel, content := range wantFiles {
		p := filepath.Join(l.dir, rel)
		fi, err := os.Stat(p)
		if err != nil {
			t.Errorf("%s: %v", rel, err)
			continue
		}
		if fi.IsDir() {
			if perm := fi.Mode().Perm(); perm != 0o700 {
				t.Errorf("%s: directory mode %o, want 700", rel, perm)
			}
			continue
		}
		if perm := fi.Mode().Perm(); perm != 0o600 {
			t.Errorf("%s: file mode %o, want 600", rel, perm)
		}
		b, err := os.ReadFile(p) // #nosec G304 -- test path
		if err != nil || string(b) != content {
			t.Errorf("%s = %q, %v; want %q", rel, b, err, content)
		}
	}
	root, err := os.Stat(l.dir)
	if err != nil || root.Mode().Perm() != 0o700 {
		t.Errorf("root: %v, %v", root.Mode(), err)
	}
	if l.Location() != l.dir || !filepath.IsAbs(l.Location()) {
		t.Errorf("Location = %q", l.Location())
	}
}

func TestCreateRefusesNonEmpty(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "precious"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Create(dir)
	if !errors.Is(err, ErrDirNotEmpty) || !strings.Contains(err.Error(), dir) {
		t.Fatalf("Create on non-empty dir: %v", err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("Create touched a non-empty dir: %d entries", len(entries))
	}

	file := filepath.Join(dir, "precious")
	if _, err := Create(file); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Errorf("Create on a file: %v", err)
	}

	// An empty existing directory is fine and becomes private.
	empty := filepath.Join(dir, "empty")
	if err := os.Mkdir(empty, 0o755); err != nil { // #nosec G301 -- Create must tighten a looser mode
		t.Fatal(err)
	}
	if _, err := Create(empty); err != nil {
		t.Fatalf("Create on empty dir: %v", err)
	}
	if fi, _ := os.Stat(empty); fi.Mode().Perm() != 0o700 {
		t.Errorf("mode %o after Create", fi.Mode().Perm())
	}
	// A second Create over a repository refuses.
	if _, err := Create(empty); !errors.Is(err, ErrDirNotEmpty) {
		t.Errorf("second Create: %v", err)
	}
}

func TestOpen(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "repo")
	if _, err := Open(dir); !errors.Is(err, storage.ErrNoRepository) {
		t.Fatalf("Open missing dir: %v", err)
	}
	l, err := Create(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir); !errors.Is(err, storage.ErrNoRepository) || !strings.Contains(err.Error(), "config") {
		t.Fatalf("Open without config: %v", err)
	}
	save(t, l, storage.KindConfig, "config", []byte("cfg"))
	save(t, l, storage.KindData, "0011", []byte("pack"))
	l2, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	b, err := l2.Load(ctx, storage.Handle{Kind: storage.KindData, Name: "0011"}, 0, -1)
	if err != nil || string(b) != "pack" {
		t.Errorf("Load through reopened repo: %q, %v", b, err)
	}
	if err := l2.Close(); err != nil {
		t.Error(err)
	}
	notDir := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(notDir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(notDir); !errors.Is(err, storage.ErrNoRepository) {
		t.Errorf("Open on a file: %v", err)
	}
}

// snapshotTree records every path under dir with its size, mode and mtime.
func snapshotTree(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		out[p] = fmt.Sprintf("%v %v %d", fi.Mode(), fi.ModTime().Format(time.RFC3339Nano), fi.Size())
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestInvalidHandlesTouchNothing proves refused names are refused before
// any path is built from them: the whole tree around the repository,
// including directory mtimes, is unchanged.
func TestInvalidHandlesTouchNothing(t *testing.T) {
	l := newRepo(t)
	save(t, l, storage.KindConfig, "config", []byte("cfg"))
	save(t, l, storage.KindData, "ab", []byte("pack"))
	parent := filepath.Dir(l.dir)
	if err := os.WriteFile(filepath.Join(parent, "outside"), []byte("o"), 0o600); err != nil {
		t.Fatal(err)
	}
	time.Sleep(10 * time.Millisecond) // so any touch would change an mtime
	before := snapshotTree(t, parent)
	for _, h := range storagetest.InvalidHandles() {
		for _, err := range []error{
			l.Save(ctx, h, []byte("evil")),
			l.Remove(ctx, h),
			func() error { _, err := l.Load(ctx, h, 0, -1); return err }(),
			func() error { _, err := l.Stat(ctx, h); return err }(),
		} {
			if !errors.Is(err, storage.ErrInvalidName) {
				t.Errorf("%q/%q: %v", h.Kind, h.Name, err)
			}
		}
	}
	after := snapshotTree(t, parent)
	if len(before) != len(after) {
		t.Fatalf("tree changed: %d entries before, %d after", len(before), len(after))
	}
	for p, v := range before {
		if after[p] != v {
			t.Errorf("%s changed: %s -> %s", p, v, after[p])
		}
	}
}

func listNames(t *testing.T, l *Local, k storage.Kind) []string {
	t.Helper()
	var names []string
	if err := l.List(ctx, k, func(fi storage.FileInfo) error {
		names = append(names, fi.Name)
		return nil
	}); err != nil {
		t.Fatalf("List %s: %v", k, err)
	}
	sort.Strings(names)
	return names
}

func TestListSkipsForeignEntries(t *testing.T) {
	l := newRepo(t)
	save(t, l, storage.KindData, "ab01", []byte("p"))
	save(t, l, storage.KindIndex, "i1", []byte("i"))
	junk := map[string]bool{ // path -> is dir
		"index/README":         false,
		"index/.tmp-123":       false,
		"index/sub":            true,
		"index/UPPER":          false,
		"data/ab/.tmp-9":       false,
		"data/ab/cd99":         false, // in the wrong shard: unloadable
		"data/stray":           false,
		"data/.tmp-x":          false,
		"data/.hidden":         true,
		"data/cd/.tmp-partial": false,
		".tmp-config":          false,
	}
	for rel, isDir := range junk {
		p := filepath.Join(l.dir, rel)
		var err error
		if isDir {
			err = os.MkdirAll(p, 0o700)
		} else {
			err = os.MkdirAll(filepath.Dir(p), 0o700)
			if err == nil {
				err = os.WriteFile(p, []byte("junk"), 0o600)
			}
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("i1", filepath.Join(l.dir, "index", "link")); err != nil {
		t.Fatal(err)
	}
	if got := listNames(t, l, storage.KindData); strings.Join(got, ",") != "ab01" {
		t.Errorf("List data = %v", got)
	}
	if got := listNames(t, l, storage.KindIndex); strings.Join(got, ",") != "i1" {
		t.Errorf("List index = %v", got)
	}
	if got := listNames(t, l, storage.KindConfig); len(got) != 0 {
		t.Errorf("List config = %v", got)
	}
}

// TestListErrorsAreNotEmptyListings guards against restic #4612: a listing
// that fails must say so.
func TestListErrorsAreNotEmptyListings(t *testing.T) {
	l := newRepo(t)
	save(t, l, storage.KindConfig, "config", []byte("cfg"))
	save(t, l, storage.KindIndex, "i1", []byte("i"))
	save(t, l, storage.KindData, "ab01", []byte("p"))

	// A kind directory that is not a directory cannot be read.
	idx := filepath.Join(l.dir, "index")
	if err := os.RemoveAll(idx); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(idx, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := l.List(ctx, storage.KindIndex, func(storage.FileInfo) error { return nil }); err == nil {
		t.Error("List of an unreadable kind directory returned no error")
	}
	if err := os.Remove(idx); err != nil {
		t.Fatal(err)
	}
	// A missing kind directory in a live repository is empty, and Save
	// recreates it.
	if got := listNames(t, l, storage.KindIndex); len(got) != 0 {
		t.Errorf("List = %v", got)
	}
	save(t, l, storage.KindIndex, "i2", []byte("i"))
	if got := listNames(t, l, storage.KindIndex); strings.Join(got, ",") != "i2" {
		t.Errorf("List after recreating = %v", got)
	}

	// A vanished repository (unmounted disk) is an error, not emptiness.
	if err := os.RemoveAll(l.dir); err != nil {
		t.Fatal(err)
	}
	for _, k := range []storage.Kind{storage.KindData, storage.KindIndex, storage.KindSnapshots} {
		err := l.List(ctx, k, func(storage.FileInfo) error { return nil })
		if !errors.Is(err, storage.ErrNoRepository) {
			t.Errorf("List %s of a vanished repository: %v", k, err)
		}
	}
	// And Save does not recreate it.
	err := l.Save(ctx, storage.Handle{Kind: storage.KindData, Name: "ab02"}, []byte("p"))
	if err == nil {
		t.Error("Save into a vanished repository succeeded")
	}
	if _, serr := os.Stat(l.dir); !errors.Is(serr, fs.ErrNotExist) {
		t.Errorf("Save recreated the repository directory: %v", serr)
	}
}

func TestCleanTemp(t *testing.T) {
	l := newRepo(t)
	save(t, l, storage.KindData, "ab01", []byte("p"))
	old := time.Now().Add(-2 * time.Hour)
	oldFiles := []string{".tmp-a", "index/.tmp-b", "data/ab/.tmp-c", "locks/.tmp-d"}
	freshFiles := []string{".tmp-new", "data/ab/.tmp-new"}
	for _, rel := range append(append([]string{}, oldFiles...), freshFiles...) {
		if err := os.WriteFile(filepath.Join(l.dir, rel), []byte("partial"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for _, rel := range oldFiles {
		if err := os.Chtimes(filepath.Join(l.dir, rel), old, old); err != nil {
			t.Fatal(err)
		}
	}
	n, err := l.CleanTemp(time.Hour)
	if err != nil || n != len(oldFiles) {
		t.Fatalf("CleanTemp = %d, %v; want %d", n, err, len(oldFiles))
	}
	left := tempFiles(t, l.dir)
	if len(left) != len(freshFiles) {
		t.Errorf("left %v, want only the fresh ones", left)
	}
	if n, err := l.CleanTemp(0); err != nil || n != len(freshFiles) {
		t.Errorf("CleanTemp(0) = %d, %v", n, err)
	}
	if b, err := l.Load(ctx, storage.Handle{Kind: storage.KindData, Name: "ab01"}, 0, -1); err != nil || string(b) != "p" {
		t.Errorf("CleanTemp disturbed an object: %q, %v", b, err)
	}
}

func TestSaveExistingFastPathAndRace(t *testing.T) {
	l := newRepo(t)
	h := storage.Handle{Kind: storage.KindSnapshots, Name: "s1"}
	save(t, l, h.Kind, h.Name, []byte("first"))
	// Bypass the early Lstat check: publish itself must refuse.
	dir, rel := dirOf(h)
	final := filepath.Join(l.dir, rel)
	for _, fallback := range []bool{false, true} {
		tmp := filepath.Join(filepath.Dir(final), ".tmp-race")
		if err := os.WriteFile(tmp, []byte("second"), 0o600); err != nil {
			t.Fatal(err)
		}
		orig := publishFile
		if fallback {
			publishFile = atomicfile.PublishLinkAt
		}
		err := l.publish(h, dir, filepath.Join(dir, ".tmp-race"), rel)
		publishFile = orig
		if !errors.Is(err, storage.ErrExists) {
			t.Errorf("publish over existing (fallback %v): %v", fallback, err)
		}
		if b, _ := os.ReadFile(final); string(b) != "first" { // #nosec G304 -- test path
			t.Errorf("object replaced (fallback %v): %q", fallback, b)
		}
		_ = os.Remove(tmp)
	}
}
