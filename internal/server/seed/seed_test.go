package seed

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const sampleManifest = `{"version":1,"created":"2026-01-02T03:04:05Z","objects":[` +
	`{"client":"web1","repo":"home","kind":"config","name":"config","size":3,"sha256":"` + zeros + `"},` +
	`{"client":"web1.example","repo":"home","kind":"data","name":"ab12","size":0,"sha256":"` + zeros + `"}]}`

const zeros = "0000000000000000000000000000000000000000000000000000000000000000"

func TestParseManifest(t *testing.T) {
	t.Parallel()
	m, err := ParseManifest([]byte(sampleManifest))
	if err != nil || len(m.Objects) != 2 || m.Objects[1].String() != "web1.example/home/data/ab12" {
		t.Fatalf("ParseManifest: %+v, %v", m, err)
	}
	for name, bad := range map[string]string{
		"unknown field":  strings.Replace(sampleManifest, `"version":1`, `"version":1,"x":1`, 1),
		"version 2":      strings.Replace(sampleManifest, `"version":1`, `"version":2`, 1),
		"path in a name": strings.Replace(sampleManifest, `"ab12"`, `"../ab12"`, 1),
		"bad client":     strings.Replace(sampleManifest, `"web1"`, `"../x"`, 1),
		"bad kind":       strings.Replace(sampleManifest, `"data"`, `"other"`, 1),
		"short hash":     strings.Replace(sampleManifest, `"`+zeros+`"}]`, `"00"}]`, 1),
		"negative size":  strings.Replace(sampleManifest, `"size":0`, `"size":-1`, 1),
		"duplicate":      strings.Replace(sampleManifest, `"web1.example"`, `"web1"`, 1) + "",
		"trailing data":  sampleManifest + "{}",
	} {
		if name == "duplicate" {
			bad = strings.Replace(bad, `"kind":"data","name":"ab12"`, `"kind":"config","name":"config"`, 1)
		}
		if _, err := ParseManifest([]byte(bad)); !errors.Is(err, ErrManifest) {
			t.Errorf("%s: ParseManifest = %v, want ErrManifest", name, err)
		}
	}
}

func FuzzParseManifest(f *testing.F) {
	f.Add([]byte(sampleManifest))
	f.Add([]byte(`{"version":1,"created":"2026-01-02T03:04:05Z","objects":[]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ParseManifest(b)
		if err != nil {
			return
		}
		for _, e := range m.Objects {
			if e.check() != nil {
				t.Fatalf("accepted an invalid entry %+v", e)
			}
		}
	})
}

func TestSignVerify(t *testing.T) {
	t.Parallel()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sig := Sign(priv, []byte(sampleManifest))
	if err := Verify(pub, []byte(sampleManifest), sig); err != nil {
		t.Fatal(err)
	}
	if err := Verify(pub, []byte(sampleManifest+" "), sig); !errors.Is(err, ErrSignature) {
		t.Errorf("a changed manifest verifies: %v", err)
	}
	// The signing context binds it: a plain signature of the bytes fails.
	if err := Verify(pub, []byte(sampleManifest), ed25519.Sign(priv, []byte(sampleManifest))); !errors.Is(err, ErrSignature) {
		t.Errorf("a signature without the context verifies: %v", err)
	}
}

func TestSeedKeyFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	k1, err := LoadOrCreateKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	k2, err := LoadOrCreateKey(dir)
	if err != nil || !k1.Equal(k2) {
		t.Fatalf("the key changed on second use: %v", err)
	}
	pub, err := LoadPublicKey(filepath.Join(dir, PublicKeyFile))
	if err != nil || !pub.Equal(k1.Public()) {
		t.Fatalf("seed.pub: %v", err)
	}
	if err := os.Chmod(filepath.Join(dir, KeyFile), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreateKey(dir); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("a key readable by others is used: %v", err)
	}
	if _, err := LoadPublicKey(filepath.Join(dir, KeyFile)); err == nil {
		t.Error("a private key file read as a public key")
	}
}
