// Package pki is the coffer server's built-in certificate authority: CA and
// server certificates, enrollment tokens, client identities and revocation.
//
// It uses only the standard library's crypto packages; it never sees a
// repository key. The formats are specified in docs/pki.md.
package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/coffer-backup/coffer/internal/atomicfile"
)

// File names inside the server's state directory.
const (
	CACertFile     = "ca.crt"
	CAKeyFile      = "ca.key"
	ServerCertFile = "server.crt"
	ServerKeyFile  = "server.key"
)

// Certificate lifetimes.
const (
	CAValidity     = 10 * 365 * 24 * time.Hour
	ServerValidity = 365 * 24 * time.Hour
	// Backdate absorbs clock skew between the server and its clients.
	Backdate = 5 * time.Minute
)

// Sentinel errors callers branch on.
var (
	ErrBadCSR      = errors.New("invalid certificate signing request")
	ErrInvalidName = errors.New("invalid name")
	ErrNotCA       = errors.New("certificate is not a CA matching its key")
)

// CA is the server's certificate authority: a self-signed ECDSA P-256
// certificate that may sign only end-entity certificates (MaxPathLen 0).
type CA struct {
	Cert *x509.Certificate
	Key  crypto.Signer
}

// NewCA creates a CA named name, valid for CAValidity from now.
func NewCA(name string, now time.Time) (*CA, error) {
	if name == "" || len(name) > 64 {
		return nil, fmt.Errorf("%w: CA name must be 1-64 characters", ErrInvalidName)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate CA key: %w", err)
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: name, Organization: []string{"coffer"}},
		NotBefore:             now.Add(-Backdate),
		NotAfter:              now.Add(CAValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            0,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("create CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parse CA certificate: %w", err)
	}
	return &CA{Cert: cert, Key: key}, nil
}

// Fingerprint returns the SHA-256 of the CA's SubjectPublicKeyInfo, the value
// enrollment tokens carry.
func (ca *CA) Fingerprint() [32]byte { return SPKIFingerprint(ca.Cert) }

// FormatFingerprint prints a CA fingerprint (SPKIFingerprint, the value
// tokens carry) the one way coffer prints it everywhere: upper-case hex in
// colon-separated pairs (docs/pki.md).
func FormatFingerprint(fp [32]byte) string {
	var b strings.Builder
	for i, c := range fp {
		if i > 0 {
			b.WriteByte(':')
		}
		fmt.Fprintf(&b, "%02X", c)
	}
	return b.String()
}

// SPKIFingerprint returns the SHA-256 of cert's SubjectPublicKeyInfo.
func SPKIFingerprint(cert *x509.Certificate) [32]byte {
	return sha256.Sum256(cert.RawSubjectPublicKeyInfo)
}

// CertPEM returns the CA certificate as PEM.
func (ca *CA) CertPEM() []byte { return EncodeCertPEM(ca.Cert.Raw) }

// Pool returns a pool holding only this CA: the ClientCAs of the server.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.Cert)
	return p
}

// SaveFiles writes ca.crt (0644) and ca.key (0600) into dir, creating dir
// with mode 0700. It refuses to replace an existing CA: that would orphan
// every enrolled client.
func (ca *CA) SaveFiles(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("save CA: %w", err)
	}
	for _, name := range []string{CAKeyFile, CACertFile} {
		if _, err := os.Lstat(filepath.Join(dir, name)); err == nil {
			return fmt.Errorf("save CA: %s: %w", filepath.Join(dir, name), os.ErrExist)
		}
	}
	keyPEM, err := EncodeKeyPEM(ca.Key)
	if err != nil {
		return fmt.Errorf("save CA: %w", err)
	}
	if err := atomicfile.WriteNew(filepath.Join(dir, CAKeyFile), keyPEM, 0o600); err != nil {
		return fmt.Errorf("save CA: %w", err)
	}
	if err := atomicfile.WriteNew(filepath.Join(dir, CACertFile), ca.CertPEM(), 0o644); err != nil {
		return fmt.Errorf("save CA: %w", err)
	}
	return nil
}

// LoadCA reads the CA from dir. It refuses a ca.key that group or others may
// access (ErrKeyPermissions, naming the file and the chmod that fixes it) and
// a certificate that is not a CA or does not match the key (ErrNotCA).
func LoadCA(dir string) (*CA, error) {
	keyPath := filepath.Join(dir, CAKeyFile)
	keyPEM, err := readPrivateFile(keyPath)
	if err != nil {
		return nil, fmt.Errorf("load CA: %w", err)
	}
	key, err := ParseKeyPEM(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("load CA: %s: %w", keyPath, err)
	}
	certPath := filepath.Join(dir, CACertFile)
	certPEM, err := readPublicFile(certPath)
	if err != nil {
		return nil, fmt.Errorf("load CA: %w", err)
	}
	cert, err := ParseCertPEM(certPEM)
	if err != nil {
		return nil, fmt.Errorf("load CA: %s: %w", certPath, err)
	}
	if !cert.IsCA || !sameKey(key, cert.PublicKey) {
		return nil, fmt.Errorf("load CA: %w: %s", ErrNotCA, certPath)
	}
	return &CA{Cert: cert, Key: key}, nil
}

// KeyPair is an end-entity certificate and its private key.
type KeyPair struct {
	Cert *x509.Certificate
	Key  crypto.Signer
}

// DefaultServerNames are the SANs of a server certificate when none are given.
var DefaultServerNames = []string{"localhost", "127.0.0.1", "::1"}

// IssueServer makes a new P-256 key and a server certificate for names
// (DNS names or IP addresses; DefaultServerNames when empty), valid for
// ServerValidity but never beyond the CA.
func (ca *CA) IssueServer(names []string, now time.Time) (*KeyPair, error) {
	if len(names) == 0 {
		names = DefaultServerNames
	}
	var dns []string
	var ips []net.IP
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			ips = append(ips, ip)
			continue
		}
		if err := validateDNSName(n); err != nil {
			return nil, err
		}
		dns = append(dns, strings.ToLower(n))
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate server key: %w", err)
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: names[0], Organization: []string{"coffer"}},
		NotBefore:             now.Add(-Backdate),
		NotAfter:              ca.clampNotAfter(now.Add(ServerValidity)),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		DNSNames:              dns,
		IPAddresses:           ips,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, key.Public(), ca.Key)
	if err != nil {
		return nil, fmt.Errorf("create server certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parse server certificate: %w", err)
	}
	return &KeyPair{Cert: cert, Key: key}, nil
}

// TLSCertificate returns the key pair for crypto/tls with the chain
// [leaf, ca]. The server must send its CA: an enrolling client finds it in
// the chain and checks it against the token's fingerprint.
func (kp *KeyPair) TLSCertificate(ca *x509.Certificate) tls.Certificate {
	chain := [][]byte{kp.Cert.Raw}
	if ca != nil {
		chain = append(chain, ca.Raw)
	}
	return tls.Certificate{Certificate: chain, PrivateKey: kp.Key, Leaf: kp.Cert}
}

// SaveFiles writes certFile (0644) and keyFile (0600) into dir, replacing
// existing ones atomically (renewal). The key is written first so a crash
// never leaves a new certificate without its key.
func (kp *KeyPair) SaveFiles(dir, certFile, keyFile string) error {
	keyPEM, err := EncodeKeyPEM(kp.Key)
	if err != nil {
		return err
	}
	if err := atomicfile.Write(filepath.Join(dir, keyFile), keyPEM, 0o600); err != nil {
		return err
	}
	return atomicfile.Write(filepath.Join(dir, certFile), EncodeCertPEM(kp.Cert.Raw), 0o644)
}

// LoadKeyPair reads certFile and keyFile from dir, refusing a key file that
// group or others may access and a key that does not match the certificate.
func LoadKeyPair(dir, certFile, keyFile string) (*KeyPair, error) {
	keyPath := filepath.Join(dir, keyFile)
	keyPEM, err := readPrivateFile(keyPath)
	if err != nil {
		return nil, err
	}
	key, err := ParseKeyPEM(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", keyPath, err)
	}
	certPath := filepath.Join(dir, certFile)
	certPEM, err := readPublicFile(certPath)
	if err != nil {
		return nil, err
	}
	cert, err := ParseCertPEM(certPEM)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", certPath, err)
	}
	if !sameKey(key, cert.PublicKey) {
		return nil, fmt.Errorf("%s does not belong to %s", keyPath, certPath)
	}
	return &KeyPair{Cert: cert, Key: key}, nil
}

// SignClient issues a client certificate for the public key in csrDER. The
// name is clientName, set by the CA: the CSR's subject, SANs and extensions
// are ignored. The CSR's self-signature must verify and its key must be
// ECDSA P-256 or Ed25519 (ErrBadCSR otherwise). The certificate is valid for
// ttl from now, but never beyond the CA, and has a random 128-bit serial.
func (ca *CA) SignClient(csrDER []byte, clientName string, ttl time.Duration, now time.Time) ([]byte, *big.Int, error) {
	if err := ValidateClientName(clientName); err != nil {
		return nil, nil, err
	}
	return ca.signLeaf(csrDER, clientName, clientURI(clientName), ttl, now)
}

// SignUser issues a person's certificate, as SignClient but with the URI
// SAN urn:coffer:user:NAME: it authenticates to the fleet API and has no
// storage namespace.
func (ca *CA) SignUser(csrDER []byte, userName string, ttl time.Duration, now time.Time) ([]byte, *big.Int, error) {
	if err := ValidateClientName(userName); err != nil {
		return nil, nil, err
	}
	return ca.signLeaf(csrDER, userName, userURI(userName), ttl, now)
}

func (ca *CA) signLeaf(csrDER []byte, name string, uri *url.URL, ttl time.Duration, now time.Time) ([]byte, *big.Int, error) {
	if ttl <= 0 {
		return nil, nil, fmt.Errorf("sign client certificate: ttl %v is not positive", ttl)
	}
	csr, err := ParseCSR(csrDER)
	if err != nil {
		return nil, nil, err
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, nil, err
	}
	notAfter := ca.clampNotAfter(now.Add(ttl))
	if !notAfter.After(now) {
		return nil, nil, fmt.Errorf("sign client certificate: the CA expires at %v", ca.Cert.NotAfter)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: name, Organization: []string{"coffer"}},
		URIs:                  []*url.URL{uri},
		NotBefore:             now.Add(-Backdate),
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, csr.PublicKey, ca.Key)
	if err != nil {
		return nil, nil, fmt.Errorf("create client certificate: %w", err)
	}
	return der, serial, nil
}

// ParseCSR parses a DER certificate signing request, checks its signature
// and accepts only ECDSA P-256 and Ed25519 keys. Errors wrap ErrBadCSR.
func ParseCSR(csrDER []byte) (*x509.CertificateRequest, error) {
	if len(csrDER) == 0 || len(csrDER) > 16<<10 {
		return nil, fmt.Errorf("%w: size %d", ErrBadCSR, len(csrDER))
	}
	csr, err := x509.ParseCertificateRequest(csrDER)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadCSR, err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("%w: signature: %w", ErrBadCSR, err)
	}
	switch pub := csr.PublicKey.(type) {
	case *ecdsa.PublicKey:
		if pub.Curve != elliptic.P256() {
			return nil, fmt.Errorf("%w: ECDSA curve %s, want P-256", ErrBadCSR, pub.Curve.Params().Name)
		}
	case ed25519.PublicKey:
	default:
		return nil, fmt.Errorf("%w: key type %T, want ECDSA P-256 or Ed25519", ErrBadCSR, csr.PublicKey)
	}
	return csr, nil
}

func (ca *CA) clampNotAfter(t time.Time) time.Time {
	if t.After(ca.Cert.NotAfter) {
		return ca.Cert.NotAfter
	}
	return t
}

// randomSerial returns a random positive 128-bit serial number.
func randomSerial() (*big.Int, error) {
	var b [16]byte
	for {
		if _, err := rand.Read(b[:]); err != nil {
			return nil, fmt.Errorf("serial: %w", err)
		}
		if n := new(big.Int).SetBytes(b[:]); n.Sign() > 0 {
			return n, nil
		}
	}
}

// NeedsRenewal reports whether cert has passed two thirds of its lifetime
// (or is already expired) at now.
func NeedsRenewal(cert *x509.Certificate, now time.Time) bool {
	life := cert.NotAfter.Sub(cert.NotBefore)
	return !now.Before(cert.NotBefore.Add(life / 3 * 2))
}
