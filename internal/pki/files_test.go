package pki

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"strings"
	"testing"
)

// ParseEd25519KeyPEM takes back what EncodeKeyPEM wrote for an Ed25519 key
// and refuses an ECDSA key and a PEM with data after the block.
func TestParseEd25519KeyPEM(t *testing.T) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	data, err := EncodeKeyPEM(priv)
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseEd25519KeyPEM(data)
	if err != nil || !got.Equal(priv) {
		t.Fatalf("round trip: %v", err)
	}
	if _, err := ParseEd25519KeyPEM(append(data, "junk"...)); err == nil {
		t.Error("data after the block accepted")
	}
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ecPEM, err := EncodeKeyPEM(ec)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ParseEd25519KeyPEM(ecPEM); err == nil || !strings.Contains(err.Error(), "not an Ed25519 key") {
		t.Errorf("ECDSA key: %v", err)
	}
}
