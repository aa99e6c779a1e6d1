package archiver

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/coffer-backup/coffer/internal/fsmeta"
	"github.com/coffer-backup/coffer/internal/repository"
)

// TestTargetBehindSymlinkedParent backs up a directory reached through a
// symlinked parent (/var/run style): the snapshot keeps the path as given,
// the parent as a directory. A target that is itself a symlink stays one,
// and a dangling link on the way is a clear error.
func TestTargetBehindSymlinkedParent(t *testing.T) {
	t.Parallel()
	base := t.TempDir()
	write(t, filepath.Join(base, "real", "data", "f"), "x")
	link := filepath.Join(base, "link")
	if err := os.Symlink("real", link); err != nil {
		t.Fatal(err)
	}
	r := newRepo(t)
	s, err := New(r, Options{}).Snapshot(context.Background(), []string{filepath.Join(link, "data")})
	if err != nil {
		t.Fatalf("target behind a symlinked parent: %v", err)
	}
	if got := paths(t, r, s, base); !slices.Equal(got, []string{"/link", "/link/data", "/link/data/f"}) {
		t.Fatalf("snapshot paths %v", got)
	}
	types := map[string]fsmeta.Type{}
	if err := r.Walk(context.Background(), s.Tree, func(p string, n *repository.Node) error {
		types[p] = n.Type
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if types[link] != fsmeta.TypeDir {
		t.Fatalf("symlinked parent stored as %v, want a directory", types[link])
	}

	s, err = New(r, Options{}).Snapshot(context.Background(), []string{link})
	if err != nil {
		t.Fatal(err)
	}
	if got := paths(t, r, s, base); !slices.Equal(got, []string{"/link"}) {
		t.Fatalf("a symlink target was followed: %v", got)
	}

	dangling := filepath.Join(base, "dangling")
	if err := os.Symlink("nowhere", dangling); err != nil {
		t.Fatal(err)
	}
	if _, err := New(r, Options{}).Snapshot(context.Background(), []string{filepath.Join(dangling, "x")}); err == nil {
		t.Fatal("a path through a dangling symlink was accepted")
	}
}
