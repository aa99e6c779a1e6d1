// Package seed writes a server's stored objects, as its clients' own
// ciphertext, to a directory to ship on a disk, with a manifest signed by
// the server's seed key, and imports such a directory at another server
// after checking the signature and every object.
package seed

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/coffer-backup/coffer/internal/atomicfile"
	"github.com/coffer-backup/coffer/internal/pki"
	"github.com/coffer-backup/coffer/internal/storage"
	"github.com/coffer-backup/coffer/internal/wire"
)

// Files of the state directory and of a seed directory.
const (
	KeyFile       = "seed.key"      // in the state directory: Ed25519, PEM PKCS #8, mode 0600
	PublicKeyFile = "seed.pub"      // beside it: PEM PKIX, given to the importer
	ManifestFile  = "manifest.json" // in the seed directory
	SignatureFile = "manifest.sig"  // the Ed25519 signature of the manifest: 64 raw bytes
	ObjectsDir    = "objects"       // objects/CLIENT/REPO/<repository layout>
)

// signingContext is prefixed to the manifest before signing, so the seed
// key's signatures cannot be taken for anything else.
const signingContext = "coffer-seed-manifest/v1\n"

// Sentinel errors.
var (
	// ErrSignature: the manifest's signature does not verify with the
	// public key given: the seed is not that server's, or was changed.
	ErrSignature = errors.New("the seed's manifest signature does not verify")
	// ErrTampered: an object of the seed is not the one its manifest lists.
	ErrTampered = errors.New("seed object does not match its manifest")
	// ErrManifest: the manifest is malformed.
	ErrManifest = errors.New("invalid seed manifest")
)

// Manifest lists every object of a seed.
type Manifest struct {
	Version int       `json:"version"`
	Created time.Time `json:"created"`
	Objects []Entry   `json:"objects"`
}

// Entry is one object: whose, which, its size and content hash.
type Entry struct {
	Client string `json:"client"`
	Repo   string `json:"repo"`
	Kind   string `json:"kind"`
	Name   string `json:"name"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// Handle is the entry's object handle.
func (e Entry) Handle() storage.Handle {
	return storage.Handle{Kind: storage.Kind(e.Kind), Name: e.Name}
}

func (e Entry) String() string { return e.Client + "/" + e.Repo + "/" + e.Handle().String() }

func (e Entry) check() error {
	if err := wire.ValidateClientName(e.Client); err != nil {
		return err
	}
	if err := wire.ValidateRepo(e.Repo); err != nil {
		return err
	}
	if err := storage.ValidateHandle(e.Handle()); err != nil {
		return err
	}
	if b, err := hex.DecodeString(e.SHA256); err != nil || len(b) != sha256.Size {
		return fmt.Errorf("object %s: sha256 %q is not 64 hex digits", e, e.SHA256)
	}
	if e.Size < 0 {
		return fmt.Errorf("object %s: negative size", e)
	}
	return nil
}

// ParseManifest decodes a manifest strictly: unknown fields, an unknown
// version, invalid names and duplicate objects are refused.
func ParseManifest(b []byte) (*Manifest, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var m Manifest
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrManifest, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: data after the manifest", ErrManifest)
	}
	if m.Version != 1 {
		return nil, fmt.Errorf("%w: version %d, this coffer reads 1", ErrManifest, m.Version)
	}
	seen := map[string]bool{}
	for _, e := range m.Objects {
		if err := e.check(); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrManifest, err)
		}
		if seen[e.String()] {
			return nil, fmt.Errorf("%w: object %s listed twice", ErrManifest, e)
		}
		seen[e.String()] = true
	}
	return &m, nil
}

// Sign returns the signature of a manifest's bytes.
func Sign(key ed25519.PrivateKey, manifest []byte) []byte {
	return ed25519.Sign(key, append([]byte(signingContext), manifest...))
}

// Verify checks a manifest's signature before anything parses it.
func Verify(pub ed25519.PublicKey, manifest, sig []byte) error {
	if len(pub) != ed25519.PublicKeySize || !ed25519.Verify(pub, append([]byte(signingContext), manifest...), sig) {
		return ErrSignature
	}
	return nil
}

// LoadOrCreateKey reads dir's seed key, making it (and seed.pub) first
// if there is none.
func LoadOrCreateKey(dir string) (ed25519.PrivateKey, error) {
	path := filepath.Join(dir, KeyFile)
	b, err := os.ReadFile(path) // #nosec G304 -- the state directory
	if errors.Is(err, fs.ErrNotExist) {
		return createKey(dir)
	}
	if err != nil {
		return nil, err
	}
	fi, err := os.Lstat(path)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() || fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("seed key %s: mode %04o, want a regular file of mode 0600 (chmod 600 %s)", path, fi.Mode().Perm(), path)
	}
	priv, err := pki.ParseEd25519KeyPEM(b)
	if err != nil {
		return nil, fmt.Errorf("seed key %s: %w", path, err)
	}
	return priv, nil
}

func createKey(dir string) (ed25519.PrivateKey, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	keyPEM, err := pki.EncodeKeyPEM(priv)
	if err != nil {
		return nil, err
	}
	if err := atomicfile.WriteNew(filepath.Join(dir, KeyFile), keyPEM, 0o600); err != nil {
		return nil, fmt.Errorf("write seed key: %w", err)
	}
	pubDER, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, err
	}
	if err := atomicfile.Write(filepath.Join(dir, PublicKeyFile), pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}), 0o644); err != nil {
		return nil, fmt.Errorf("write seed public key: %w", err)
	}
	return priv, nil
}

// LoadPublicKey reads a seed.pub file.
func LoadPublicKey(path string) (ed25519.PublicKey, error) {
	b, err := os.ReadFile(path) // #nosec G304 -- the file the admin named
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "PUBLIC KEY" {
		return nil, fmt.Errorf("public key %s: want a PEM \"PUBLIC KEY\" block (the exporter's %s)", path, PublicKeyFile)
	}
	k, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("public key %s: %w", path, err)
	}
	pub, ok := k.(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("public key %s: not an Ed25519 key", path)
	}
	return pub, nil
}

// Fingerprint is the hex SHA-256 of a public key, for comparing by voice.
func Fingerprint(pub ed25519.PublicKey) string {
	s := sha256.Sum256(pub)
	return hex.EncodeToString(s[:])
}
