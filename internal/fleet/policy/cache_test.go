package policy

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

func TestStoreLoad(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	want := validPolicy()
	signed := mustSign(t, want)
	if _, err := Load(dir, testPub(), want.Client); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Load before Store: %v", err)
	}
	if err := Store(dir, signed); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, CacheFile)
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("cache mode %v, %v", fi.Mode(), err)
	}
	got, err := Load(dir, testPub(), want.Client)
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("Load = %+v, %v", got, err)
	}
	// A newer policy replaces the cached one.
	want.Generation++
	if err := Store(dir, mustSign(t, want)); err != nil {
		t.Fatal(err)
	}
	if got, err := Load(dir, testPub(), want.Client); err != nil || got.Generation != want.Generation {
		t.Fatalf("Load after a second Store = %+v, %v", got, err)
	}
	if err := Store(dir, make([]byte, MaxSigned+1)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("Store oversize: %v", err)
	}
}

// TestLoadRefusesTamperedCache: a cache edited on disk is refused, and the
// error names the file.
func TestLoadRefusesTamperedCache(t *testing.T) {
	t.Parallel()
	p := validPolicy()
	signed := mustSign(t, p)
	for _, c := range []struct {
		name string
		data []byte
		want error
	}{
		{"flipped byte", flip(signed, len(signed)/2), ErrBadSignature},
		{"unsigned policy", marshal(t, p), ErrBadSignature},
		{"empty", nil, ErrBadSignature},
		{"oversize", append(bytes.Clone(signed), bytes.Repeat([]byte(" "), MaxSigned)...), ErrTooLarge},
	} {
		dir := t.TempDir()
		path := filepath.Join(dir, CacheFile)
		if err := os.WriteFile(path, c.data, 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := Load(dir, testPub(), p.Client)
		if !errors.Is(err, c.want) || !bytes.Contains([]byte(err.Error()), []byte(path)) {
			t.Errorf("%s: Load = %v, want %v naming %s", c.name, err, c.want, path)
		}
	}
	// Another host's cached policy is refused too.
	dir := t.TempDir()
	if err := Store(dir, signed); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(dir, testPub(), "db-1"); !errors.Is(err, ErrWrongClient) {
		t.Errorf("another client: %v", err)
	}
}

func flip(b []byte, i int) []byte {
	out := bytes.Clone(b)
	out[i] ^= 1
	return out
}
