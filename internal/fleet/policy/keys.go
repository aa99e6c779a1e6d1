package policy

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/coffer-backup/coffer/internal/atomicfile"
	"github.com/coffer-backup/coffer/internal/regfile"
)

// File names: the server's signing key and its public half in the server's
// state directory; the pinned public key and the cached policy in an
// agent's identity directory.
const (
	KeyFile       = "policy.key"
	PublicKeyFile = "policy.pub"
	CacheFile     = "policy.json"
)

// maxKeyFile bounds a key file read.
const maxKeyFile = 16 << 10

// ErrKeyPermissions is returned for a key file others may read (the
// private key) or write (either key).
var ErrKeyPermissions = errors.New("key file permissions too loose")

// GenerateKey makes the server's policy signing key: an Ed25519 key written
// to dir/policy.key as a PEM "PRIVATE KEY" block (PKCS #8, mode 0600) and
// its public half to dir/policy.pub as a PEM "PUBLIC KEY" block (PKIX,
// mode 0644). It never replaces an existing key: that would orphan every
// agent that pinned the old one (the error then matches fs.ErrExist).
func GenerateKey(dir string) (ed25519.PrivateKey, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate policy key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("generate policy key: %w", err)
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	if err := atomicfile.WriteNew(filepath.Join(dir, KeyFile), keyPEM, 0o600); err != nil {
		return nil, fmt.Errorf("write policy key: %w", err)
	}
	if err := WritePublicKey(dir, pub); err != nil {
		return nil, err
	}
	return priv, nil
}

// LoadKey reads dir/policy.key. It refuses a file that is not regular or
// whose mode lets group or others in at all.
func LoadKey(dir string) (ed25519.PrivateKey, error) {
	path := filepath.Join(dir, KeyFile)
	data, err := readKeyFile(path, 0o077)
	if err != nil {
		return nil, err
	}
	block, rest := pem.Decode(data)
	if block == nil || block.Type != "PRIVATE KEY" || len(bytes.TrimSpace(rest)) != 0 {
		return nil, fmt.Errorf("policy key %s: want one PEM \"PRIVATE KEY\" block", path)
	}
	key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("policy key %s: %w", path, err)
	}
	priv, ok := key.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("policy key %s: %T is not an Ed25519 key", path, key)
	}
	return priv, nil
}

// MarshalPublicKey returns pub as a PEM "PUBLIC KEY" block (PKIX), the
// contents of policy.pub.
func MarshalPublicKey(pub ed25519.PublicKey) ([]byte, error) {
	if len(pub) != ed25519.PublicKeySize {
		return nil, errors.New("marshal policy public key: not an Ed25519 public key")
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("marshal policy public key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), nil
}

// ParsePublicKey reads what MarshalPublicKey writes: exactly one PEM
// "PUBLIC KEY" block holding an Ed25519 key.
func ParsePublicKey(data []byte) (ed25519.PublicKey, error) {
	block, rest := pem.Decode(data)
	if block == nil || block.Type != "PUBLIC KEY" || len(bytes.TrimSpace(rest)) != 0 {
		return nil, errors.New("policy public key: want one PEM \"PUBLIC KEY\" block")
	}
	key, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("policy public key: %w", err)
	}
	pub, ok := key.(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("policy public key: %T is not an Ed25519 key", key)
	}
	return pub, nil
}

// WritePublicKey writes pub to dir/policy.pub (mode 0644), replacing it:
// the server at init, the agent when it pins the key at enrollment.
func WritePublicKey(dir string, pub ed25519.PublicKey) error {
	data, err := MarshalPublicKey(pub)
	if err != nil {
		return err
	}
	if err := atomicfile.Write(filepath.Join(dir, PublicKeyFile), data, 0o644); err != nil {
		return fmt.Errorf("write policy public key: %w", err)
	}
	return nil
}

// LoadPublicKey reads dir/policy.pub. It refuses a file that is not
// regular or that group or others may write: whoever can replace the
// pinned key can sign policies.
func LoadPublicKey(dir string) (ed25519.PublicKey, error) {
	path := filepath.Join(dir, PublicKeyFile)
	data, err := readKeyFile(path, 0o022)
	if err != nil {
		return nil, err
	}
	pub, err := ParsePublicKey(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return pub, nil
}

// readKeyFile reads a small regular file whose permission bits share none
// with forbidden, checked on the descriptor it reads.
func readKeyFile(path string, forbidden os.FileMode) ([]byte, error) {
	f, fi, err := regfile.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read key: %w", err)
	}
	defer func() { _ = f.Close() }()
	if perm := fi.Mode().Perm(); perm&forbidden != 0 {
		return nil, fmt.Errorf("%w: %s has mode %04o, want none of the bits %04o", ErrKeyPermissions, path, perm, forbidden)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxKeyFile+1))
	if err != nil {
		return nil, fmt.Errorf("read key %s: %w", path, err)
	}
	if len(data) > maxKeyFile {
		return nil, fmt.Errorf("read key %s: larger than %d bytes", path, maxKeyFile)
	}
	return data, nil
}
