package state

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/coffer-backup/coffer/internal/atomicfile"
	"github.com/coffer-backup/coffer/internal/pki"
	"golang.org/x/sys/unix"
)

// The audit log's place in a state directory (docs/fleet.md, "Audit log").
const (
	AuditDir           = "audit"     // the log's segments, mode 0700
	AuditKeyFile       = "audit.key" // Ed25519 key signing its checkpoints: PEM PKCS #8, mode 0600
	AuditPublicKeyFile = "audit.pub" // its public half: PEM PKIX, mode 0644, to check a copy of the log elsewhere
)

// maxAuditKeyFile bounds the audit key file read.
const maxAuditKeyFile = 16 << 10

// EnsureAuditKey returns the audit key of dir, making it (and audit.pub)
// first if there is none: server init makes it, and a state directory
// made before the audit log existed gets it when the server starts. An
// existing key is never replaced.
func EnsureAuditKey(dir string) (ed25519.PrivateKey, error) {
	key, err := LoadAuditKey(dir)
	if !errors.Is(err, fs.ErrNotExist) {
		return key, err
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate audit key: %w", err)
	}
	keyPEM, err := pki.EncodeKeyPEM(priv)
	if err != nil {
		return nil, fmt.Errorf("generate audit key: %w", err)
	}
	err = atomicfile.WriteNew(filepath.Join(dir, AuditKeyFile), keyPEM, 0o600)
	if atomicfile.IsExist(err) {
		return LoadAuditKey(dir) // made meanwhile by another process
	}
	if err != nil {
		return nil, fmt.Errorf("write audit key: %w", err)
	}
	pubDER, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("write audit public key: %w", err)
	}
	if err := atomicfile.Write(filepath.Join(dir, AuditPublicKeyFile), pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}), 0o644); err != nil {
		return nil, fmt.Errorf("write audit public key: %w", err)
	}
	return priv, nil
}

// LoadAuditKey reads dir's audit key. A missing key matches fs.ErrNotExist;
// a file that is not regular or that group or others may access is
// ErrInsecureFile.
func LoadAuditKey(dir string) (ed25519.PrivateKey, error) {
	path := filepath.Join(dir, AuditKeyFile)
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_NOFOLLOW, 0) // #nosec G304 -- the admin's state directory
	if err != nil {
		return nil, fmt.Errorf("read audit key: %w", err)
	}
	defer func() { _ = f.Close() }()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("read audit key: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%w: %s is not a regular file", ErrInsecureFile, path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("%w: %s has mode %04o; run chmod 600 %s", ErrInsecureFile, path, perm, path)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxAuditKeyFile+1))
	if err != nil {
		return nil, fmt.Errorf("read audit key: %w", err)
	}
	return parseAuditKey(path, data)
}

// parseAuditKey reads exactly one PEM "PRIVATE KEY" block holding an
// Ed25519 key.
func parseAuditKey(path string, data []byte) (ed25519.PrivateKey, error) {
	if len(data) > maxAuditKeyFile {
		return nil, fmt.Errorf("audit key %s: longer than %d bytes", path, maxAuditKeyFile)
	}
	priv, err := pki.ParseEd25519KeyPEM(data)
	if err != nil {
		return nil, fmt.Errorf("audit key %s: %w", path, err)
	}
	return priv, nil
}
