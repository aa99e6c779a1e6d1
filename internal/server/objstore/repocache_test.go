package objstore

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/coffer-backup/coffer/internal/storage"
	"github.com/coffer-backup/coffer/internal/storage/local"
)

// TestRepoCache checks the repository cache's rules: a repository is
// opened once while its directory stays the same, reopened when the
// directory is another, and closed when evicted (at once when unused,
// else at its last release).
func TestRepoCache(t *testing.T) {
	base := t.TempDir()
	opens := map[string]int{}
	c := newRepoCache(2)
	get := func(name string) (*local.Local, func()) {
		t.Helper()
		dir := filepath.Join(base, name)
		fi, err := os.Lstat(dir)
		if errors.Is(err, os.ErrNotExist) {
			if _, err := local.Create(dir); err != nil {
				t.Fatal(err)
			}
			fi, err = os.Lstat(dir)
		}
		if err != nil {
			t.Fatal(err)
		}
		l, release, err := c.acquire(name, fi, func() (*local.Local, error) {
			opens[name]++
			return local.OpenDir(dir)
		})
		if err != nil {
			t.Fatal(err)
		}
		return l, release
	}
	closed := func(l *local.Local) bool {
		_, err := l.Stat(context.Background(), storage.Handle{Kind: storage.KindConfig, Name: "config"})
		return errors.Is(err, storage.ErrClosed)
	}

	a, releaseA := get("a")
	a2, releaseA2 := get("a")
	if a != a2 || opens["a"] != 1 {
		t.Fatalf("a opened %d times, same storage %v", opens["a"], a == a2)
	}
	releaseA2()
	releaseA2() // a second call does nothing
	b, releaseB := get("b")
	releaseB()
	_, releaseC := get("c") // evicts a, still in use, and leaves it open
	if closed(a) {
		t.Fatal("a in use was closed by its eviction")
	}
	releaseA()
	if !closed(a) {
		t.Fatal("a evicted and released is still open")
	}
	if closed(b) {
		t.Fatal("b, second most recent, was evicted")
	}
	releaseC()

	// b's directory replaced: the next request opens the new one.
	if err := os.Rename(filepath.Join(base, "b"), filepath.Join(base, "b.old")); err != nil {
		t.Fatal(err)
	}
	b2, releaseB2 := get("b")
	defer releaseB2()
	if b2 == b || opens["b"] != 2 || !closed(b) {
		t.Fatalf("b replaced: opened %d times, old one closed %v", opens["b"], closed(b))
	}

	c.close()
	if closed(b2) {
		t.Fatal("b in use closed by the cache's close")
	}
	releaseB2()
	if !closed(b2) {
		t.Fatal("b still open after the cache's close and its release")
	}
}
