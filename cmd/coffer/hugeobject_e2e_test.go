package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// plantSparse makes path a 10 GB sparse file (created, or extended).
func plantSparse(t *testing.T, path string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE, 0o600) // #nosec G304 -- test path
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(10 << 30); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// firstObject returns the path of one object under dir (recursively).
func firstObject(t *testing.T, dir string) string {
	t.Helper()
	var found string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && found == "" {
			found = p
		}
		return err
	})
	if err != nil || found == "" {
		t.Fatalf("no object under %s: %v", dir, err)
	}
	return found
}

// TestHugeObjectsRefused plants a 10 GB sparse file as each kind of object
// the client reads whole (issue 10, item 3). Each command fails or warns
// at once with an error that names the object and the limit, instead of
// dying on an allocation or reading for minutes.
func TestHugeObjectsRefused(t *testing.T) {
	t.Parallel()
	name := strings.Repeat("ab", 32)
	cases := []struct {
		kind  string
		plant func(e *env) string // the object's name in messages
		args  []string
		code  int
	}{
		{"snapshot", func(e *env) string {
			plantSparse(t, filepath.Join(e.repo, "snapshots", name))
			return "snapshots/" + name
		}, []string{"snapshots"}, 0},
		{"index", func(e *env) string {
			plantSparse(t, filepath.Join(e.repo, "index", name))
			return "index/" + name
		}, []string{"restore", "latest", "--target", "dst"}, 0}, // reported, the rest restores (item 7)
		{"lock", func(e *env) string {
			plantSparse(t, filepath.Join(e.repo, "locks", name))
			return "locks/" + name
		}, []string{"backup", "src"}, 0}, // reported; it blocks only exclusive locks (item 7)
		{"forget", func(e *env) string {
			plantSparse(t, filepath.Join(e.repo, "forgets", name))
			return "forgets/" + name
		}, []string{"check"}, 1},
		{"config", func(e *env) string {
			plantSparse(t, filepath.Join(e.repo, "config"))
			return "config"
		}, []string{"snapshots"}, 1},
		{"pack", func(e *env) string {
			p := firstObject(t, filepath.Join(e.repo, "data"))
			plantSparse(t, p)
			return filepath.Base(p)
		}, []string{"check", "--read-data"}, 1},
	}
	for _, c := range cases {
		t.Run(c.kind, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			e.init()
			src := filepath.Join(e.dir, "src")
			writeFile(t, filepath.Join(src, "f"), []byte("hello"))
			e.must("backup", "--repo", e.repo, src)
			obj := c.plant(e)
			args := append([]string{}, c.args...)
			for i, a := range args {
				if a == "src" || a == "dst" {
					args[i] = filepath.Join(e.dir, a)
				}
			}
			start := time.Now()
			so, se, code := e.run(append(args, "--repo", e.repo)...)
			if d := time.Since(start); d > 20*time.Second {
				t.Errorf("took %v", d)
			}
			out := so + se
			if code != c.code || !strings.Contains(out, obj) || !strings.Contains(out, "larger than the limit") || strings.Contains(out, "panic") {
				t.Fatalf("planted 10 GB %s, coffer %v: exit %d\n%s", obj, c.args, code, out)
			}
		})
	}
}
