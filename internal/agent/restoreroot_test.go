package agent

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestConfine(t *testing.T) {
	t.Parallel()
	base := t.TempDir()
	root := filepath.Join(base, "restore")
	outside := filepath.Join(base, "etc")
	if err := os.MkdirAll(outside, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := confine(root, filepath.Join(root, "job1")); err != nil {
		t.Fatalf("a target under the root: %v", err)
	}
	if fi, err := os.Stat(root); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("restore root made: %v, %v", fi, err)
	}
	if err := os.Symlink(outside, filepath.Join(root, "link")); err != nil {
		t.Fatal(err)
	}
	for _, target := range []string{
		outside,
		filepath.Join(root, "..", "etc"),
		filepath.Join(root, "link"),
		filepath.Join(root, "link", "deeper", "x"),
		root + "x",
		"relative/path",
	} {
		if err := confine(root, target); !errors.Is(err, ErrOutsideRestoreRoot) {
			t.Errorf("%s: %v, want ErrOutsideRestoreRoot", target, err)
		}
	}
	if err := confine(root, root); err != nil {
		t.Errorf("the root itself: %v", err)
	}
}
