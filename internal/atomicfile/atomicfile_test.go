package atomicfile

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

func TestWriteReplaces(t *testing.T) {
	t.Parallel()
	p := filepath.Join(t.TempDir(), "f")
	if err := Write(p, []byte("one"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := Write(p, []byte("two"), 0o640); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(p)
	if err != nil || string(b) != "two" {
		t.Fatalf("got %q, %v", b, err)
	}
	fi, _ := os.Stat(p)
	if fi.Mode().Perm() != 0o640 {
		t.Fatalf("mode %v, want 0640", fi.Mode().Perm())
	}
	assertNoTemp(t, filepath.Dir(p))
}

func TestWriteNewNeverReplaces(t *testing.T) {
	// Not parallel: the fallback case swaps a package variable.
	for _, fallback := range []bool{false, true} {
		p := filepath.Join(t.TempDir(), "f")
		if fallback {
			withoutNoReplace(t)
		}
		if err := WriteNew(p, []byte("one"), 0o600); err != nil {
			t.Fatal(err)
		}
		err := WriteNew(p, []byte("two"), 0o600)
		if !errors.Is(err, fs.ErrExist) || !IsExist(err) {
			t.Fatalf("fallback %v: second WriteNew: %v, want fs.ErrExist", fallback, err)
		}
		b, _ := os.ReadFile(p)
		if string(b) != "one" {
			t.Fatalf("fallback %v: existing file changed to %q", fallback, b)
		}
		assertNoTemp(t, filepath.Dir(p))
	}
}

func TestWriteFuncFailureLeavesNothing(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	boom := errors.New("boom")
	err := WriteFunc(p, 0o600, false, func(f *os.File) error {
		_, _ = f.Write([]byte("partial"))
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("got %v, want boom", err)
	}
	if _, err := os.Stat(p); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("target exists after a failed write: %v", err)
	}
	assertNoTemp(t, dir)
}

func TestWriteMissingDirectory(t *testing.T) {
	t.Parallel()
	err := Write(filepath.Join(t.TempDir(), "no", "f"), []byte("x"), 0o600)
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("got %v, want fs.ErrNotExist", err)
	}
}

// withoutNoReplace makes Publish take its link fallback for one test.
func withoutNoReplace(t *testing.T) {
	old := renameNoReplace
	renameNoReplace = func(string, string) error { return errNoReplaceUnsupported }
	t.Cleanup(func() { renameNoReplace = old })
}

func assertNoTemp(t *testing.T, dir string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if e.Name() != "f" {
			t.Errorf("left behind: %s", e.Name())
		}
	}
}
