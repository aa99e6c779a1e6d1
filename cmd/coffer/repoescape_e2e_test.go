package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestSymlinkedIndexDirRefused moves a repository's index/ elsewhere and
// leaves a symbolic link in its place: backup, run as the user owning the
// repository, fails naming the link, writes nothing through it and
// leaves no lock (issue 10, item 5).
func TestSymlinkedIndexDirRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.init()
	src := filepath.Join(e.dir, "src")
	writeFile(t, filepath.Join(src, "a"), []byte("first"))
	e.must("backup", "--repo", e.repo, src)

	elsewhere := filepath.Join(t.TempDir(), "index")
	link := filepath.Join(e.repo, "index")
	if err := os.Rename(link, elsewhere); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(elsewhere, link); err != nil {
		t.Fatal(err)
	}
	before := listTree(t, elsewhere)
	writeFile(t, filepath.Join(src, "b"), []byte("second, new content"))
	_, se, code := e.run("backup", "--repo", e.repo, src)
	if code == 0 {
		t.Fatal("backup through a symlinked index/ succeeded")
	}
	if !strings.Contains(se, link) || !strings.Contains(se, "symbolic link") {
		t.Errorf("the error does not name the link %s:\n%s", link, se)
	}
	if after := listTree(t, elsewhere); !slices.Equal(before, after) {
		t.Errorf("backup wrote through the link: %v, was %v", after, before)
	}
	if n := storedLocks(t, e); n != 0 {
		t.Errorf("%d locks left", n)
	}
}
