package policy

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

func TestGenerateAndLoadKey(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	priv, err := GenerateKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	for name, mode := range map[string]fs.FileMode{KeyFile: 0o600, PublicKeyFile: 0o644} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil || fi.Mode().Perm() != mode {
			t.Fatalf("%s: %v, %v; want mode %v", name, fi.Mode(), err, mode)
		}
	}
	loaded, err := LoadKey(dir)
	if err != nil || !priv.Equal(loaded) {
		t.Fatalf("LoadKey: %v", err)
	}
	pub, err := LoadPublicKey(dir)
	if err != nil || !pub.Equal(priv.Public()) {
		t.Fatalf("LoadPublicKey: %v", err)
	}
	// What the loaded key signs, the loaded public key verifies.
	p := validPolicy()
	signed, err := Sign(loaded, p)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Verify(signed, pub, p.Client, 0); err != nil {
		t.Fatal(err)
	}
	// An existing key is never replaced.
	if _, err := GenerateKey(dir); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("second GenerateKey: %v", err)
	}
	if again, err := LoadKey(dir); err != nil || !again.Equal(priv) {
		t.Fatalf("the key changed: %v", err)
	}
}

func TestKeyModesRefused(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if _, err := GenerateKey(dir); err != nil {
		t.Fatal(err)
	}
	for _, mode := range []fs.FileMode{0o640, 0o604, 0o660, 0o644} {
		if err := os.Chmod(filepath.Join(dir, KeyFile), mode); err != nil {
			t.Fatal(err)
		}
		if _, err := LoadKey(dir); !errors.Is(err, ErrKeyPermissions) {
			t.Errorf("key mode %v: LoadKey = %v", mode, err)
		}
	}
	for _, mode := range []fs.FileMode{0o664, 0o646} {
		if err := os.Chmod(filepath.Join(dir, PublicKeyFile), mode); err != nil {
			t.Fatal(err)
		}
		if _, err := LoadPublicKey(dir); !errors.Is(err, ErrKeyPermissions) {
			t.Errorf("public key mode %v: LoadPublicKey = %v", mode, err)
		}
	}
	if err := os.Chmod(filepath.Join(dir, KeyFile), 0o400); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadKey(dir); err != nil {
		t.Errorf("mode 0400: %v", err)
	}
}

func TestKeyFilesRefused(t *testing.T) {
	t.Parallel()
	pubPEM, err := MarshalPublicKey(testPub())
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string][]byte{
		"empty":        nil,
		"not PEM":      []byte("hello"),
		"public key":   pubPEM,
		"two blocks":   append(bytes.Clone(pubPEM), pubPEM...),
		"big":          bytes.Repeat([]byte("a"), maxKeyFile+1),
		"garbage body": []byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"),
	}
	for name, data := range cases {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, KeyFile), data, 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := LoadKey(dir); err == nil {
			t.Errorf("%s: LoadKey accepted it", name)
		}
	}
	if _, err := LoadKey(t.TempDir()); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing key: %v", err)
	}
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, KeyFile), 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadKey(dir); err == nil {
		t.Error("a directory loaded as a key")
	}
	for _, data := range [][]byte{nil, []byte("x"), append(bytes.Clone(pubPEM), "junk"...)} {
		if _, err := ParsePublicKey(data); err == nil {
			t.Errorf("ParsePublicKey(%q) accepted", data)
		}
	}
	if _, err := MarshalPublicKey(ed25519.PublicKey{1}); err == nil {
		t.Error("a short public key marshals")
	}
}
