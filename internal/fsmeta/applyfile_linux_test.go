//go:build linux

package fsmeta

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// TestApplyFileMatchesApply restores regular files through ApplyFile, as the
// restorer does, and checks everything Apply promises: owner, setuid, xattrs
// (including removing ones the new file got that the snapshot lacks), times
// and inode flags; and that LstatNoFileFlags plus FileFlags read what Lstat
// reads.
func TestApplyFileMatchesApply(t *testing.T) {
	t.Parallel()
	requireRoot(t)
	src, dst := t.TempDir(), t.TempDir()
	type entry struct {
		name  string
		mode  uint32
		attrs map[string][]byte
		flags uint32
	}
	entries := []entry{
		{"plain", 0o644, nil, 0},
		{"setuid", 0o4755, map[string][]byte{"user.a": []byte("1"), "trusted.t": {0, 0xff}}, 0},
		{"flags", 0o600, map[string][]byte{"user.f": nil}, FlagNoDump | FlagImmutable},
	}
	t.Cleanup(func() { // immutable files cannot be removed
		for _, e := range entries {
			_ = applyFlags(filepath.Join(src, e.name), TypeFile, 0)
			_ = applyFlags(filepath.Join(dst, e.name), TypeFile, 0)
		}
	})
	flagsWork := true
	for i, e := range entries {
		p := filepath.Join(src, e.name)
		if err := os.WriteFile(p, []byte("content of "+e.name), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := unix.Lchown(p, 2000+i, 3000+i); err != nil {
			t.Fatal(err)
		}
		if err := unix.Chmod(p, e.mode); err != nil {
			t.Fatal(err)
		}
		for k, v := range e.attrs {
			lset(t, p, k, v)
		}
		setTimes(t, p, i)
		if e.flags != 0 {
			if err := applyFlags(p, TypeFile, e.flags); err != nil {
				flagsWork = false
			}
		}
	}
	for _, e := range entries {
		p := filepath.Join(src, e.name)
		m := jsonRoundTrip(t, mustLstat(t, p))
		lazy, err := LstatNoFileFlags(p)
		if err != nil {
			t.Fatal(err)
		}
		if lazy.Flags != 0 {
			t.Errorf("%s: LstatNoFileFlags read flags %#x", e.name, lazy.Flags)
		}
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		lazy.Flags = FileFlags(f)
		_ = f.Close()
		if lazy.Flags != m.Flags {
			t.Errorf("%s: FileFlags %#x, Lstat %#x", e.name, lazy.Flags, m.Flags)
		}
		if flagsWork && e.flags != 0 && m.Flags&e.flags != e.flags {
			t.Errorf("%s: flags %#x, want %#x set", e.name, m.Flags, e.flags)
		}

		d := filepath.Join(dst, e.name)
		out, err := os.OpenFile(d, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		// A stray xattr the snapshot does not have must go.
		if err := unix.Fsetxattr(int(out.Fd()), "user.stray", []byte("x"), 0); err != nil {
			t.Fatal(err)
		}
		if _, err := out.WriteString("content of " + e.name); err != nil {
			t.Fatal(err)
		}
		if err := ApplyFile(out, d, m, ApplyOptions{Strict: true}); err != nil {
			t.Fatalf("ApplyFile %s: %v", e.name, err)
		}
		if err := out.Close(); err != nil {
			t.Fatal(err)
		}
		assertRestored(t, m, d)
	}
}

func TestApplyFileRefusesWrongType(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	if err := os.WriteFile(p, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m := &Meta{Type: TypeDir, Mode: 0o755}
	if err := ApplyFile(f, p, m, ApplyOptions{}); !errors.Is(err, ErrTypeMismatch) {
		t.Fatalf("ApplyFile of dir metadata onto a file: %v, want ErrTypeMismatch", err)
	}
}
