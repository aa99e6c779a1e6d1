package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"

	"github.com/coffer-backup/coffer/internal/regfile"
)

// ErrKeyPermissions is returned when a private key file can be read or
// written by anyone but its owner, or is not a regular file.
var ErrKeyPermissions = errors.New("private key file is accessible to others")

// maxPEMFile bounds what is read from a certificate or key file.
const maxPEMFile = 1 << 20

// EncodeCertPEM returns one PEM "CERTIFICATE" block holding der.
func EncodeCertPEM(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// EncodeKeyPEM returns key as a PEM "PRIVATE KEY" block (PKCS #8), the form
// openssl and curl read.
func EncodeKeyPEM(key crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encode private key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// decodeOnePEM returns the single PEM block of type typ in data and refuses
// anything else around it.
func decodeOnePEM(data []byte, typ string) ([]byte, error) {
	block, rest := pem.Decode(data)
	if block == nil {
		return nil, fmt.Errorf("no PEM %s block", typ)
	}
	if block.Type != typ {
		return nil, fmt.Errorf("PEM block is %q, want %q", block.Type, typ)
	}
	if len(block.Headers) != 0 {
		return nil, fmt.Errorf("PEM %s block has headers (encrypted keys are not supported)", typ)
	}
	if len(trimSpace(rest)) != 0 {
		return nil, fmt.Errorf("unexpected data after the PEM %s block", typ)
	}
	return block.Bytes, nil
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\n' || b[0] == '\r' || b[0] == '\t') {
		b = b[1:]
	}
	return b
}

// ParseCertPEM parses a file holding exactly one PEM certificate.
func ParseCertPEM(data []byte) (*x509.Certificate, error) {
	der, err := decodeOnePEM(data, "CERTIFICATE")
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parse certificate: %w", err)
	}
	return cert, nil
}

// ParseKeyPEM parses a PKCS #8 "PRIVATE KEY" PEM block holding an ECDSA or
// Ed25519 key.
func ParseKeyPEM(data []byte) (crypto.Signer, error) {
	der, err := decodeOnePEM(data, "PRIVATE KEY")
	if err != nil {
		return nil, err
	}
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("parse private key: %w", err)
	}
	switch k := k.(type) {
	case *ecdsa.PrivateKey:
		return k, nil
	case ed25519.PrivateKey:
		return k, nil
	default:
		return nil, fmt.Errorf("unsupported private key type %T (want ECDSA or Ed25519)", k)
	}
}

// ParseEd25519KeyPEM is ParseKeyPEM for a key that must be Ed25519 (the
// server's signing keys: audit checkpoints, seed manifests).
func ParseEd25519KeyPEM(data []byte) (ed25519.PrivateKey, error) {
	k, err := ParseKeyPEM(data)
	if err != nil {
		return nil, err
	}
	priv, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("%T is not an Ed25519 key", k)
	}
	return priv, nil
}

// readPrivateFile reads a private key file after checking that only its
// owner can access it. The check is on the opened file, so a rename between
// check and read cannot swap it.
func readPrivateFile(path string) ([]byte, error) {
	f, fi, err := regfile.Open(path)
	if errors.Is(err, regfile.ErrNotRegular) {
		return nil, fmt.Errorf("%w: %w", ErrKeyPermissions, err)
	}
	if err != nil {
		return nil, fmt.Errorf("open private key: %w", err)
	}
	defer f.Close()
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("%w: %s has mode %#o; run: chmod 600 %s", ErrKeyPermissions, path, perm, path)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxPEMFile+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if len(data) > maxPEMFile {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, maxPEMFile)
	}
	return data, nil
}

// readPublicFile reads a certificate file.
func readPublicFile(path string) ([]byte, error) {
	f, _, err := regfile.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open certificate: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxPEMFile+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if len(data) > maxPEMFile {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, maxPEMFile)
	}
	return data, nil
}

// sameKey reports whether the private key belongs to the public key.
func sameKey(key crypto.Signer, pub crypto.PublicKey) bool {
	type equaler interface{ Equal(crypto.PublicKey) bool }
	e, ok := key.Public().(equaler)
	return ok && e.Equal(pub)
}
