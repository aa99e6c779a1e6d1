package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/coffer-backup/coffer/internal/atomicfile"
)

// File names inside a client's identity directory.
const (
	ClientKeyFile  = "client.key"
	ClientCertFile = "client.crt"
	// The identity's CA certificate uses CACertFile ("ca.crt").
)

// Sentinel errors of the client side.
var (
	ErrFingerprintMismatch = errors.New("server's CA does not match the token's fingerprint")
	ErrServerNotTrusted    = errors.New("server certificate does not verify against the pinned CA")
	ErrBadIdentity         = errors.New("invalid client identity")
)

// NewClientKey makes the client's ECDSA P-256 private key. It never leaves
// the client; the server only sees the CSR.
func NewClientKey() (crypto.Signer, error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate client key: %w", err)
	}
	return k, nil
}

// NewCSR returns a DER certificate signing request for key. The name is
// informative only: the CA sets the certificate's name from the token.
func NewCSR(key crypto.Signer, clientName string) ([]byte, error) {
	if err := ValidateClientName(clientName); err != nil {
		return nil, err
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject: pkix.Name{CommonName: clientName},
	}, key)
	if err != nil {
		return nil, fmt.Errorf("create CSR: %w", err)
	}
	return der, nil
}

// VerifyServerAgainstFingerprint checks the chain a server presented during
// enrollment: some CA certificate in it must have the SPKI SHA-256 fp
// (ErrFingerprintMismatch), and the leaf must chain to that CA, be valid at
// now for server authentication and for serverName, a host name or IP
// address (ErrServerNotTrusted). It returns the matching CA certificate.
func VerifyServerAgainstFingerprint(certs []*x509.Certificate, serverName string, fp [32]byte, now time.Time) (*x509.Certificate, error) {
	if len(certs) == 0 {
		return nil, fmt.Errorf("%w: server sent no certificate", ErrServerNotTrusted)
	}
	var ca *x509.Certificate
	inter := x509.NewCertPool()
	for _, c := range certs {
		if c.IsCA && SPKIFingerprint(c) == fp {
			ca = c
		} else if c != certs[0] {
			inter.AddCert(c)
		}
	}
	if ca == nil {
		return nil, ErrFingerprintMismatch
	}
	if serverName == "" {
		return nil, fmt.Errorf("%w: no server name to check", ErrServerNotTrusted)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	if _, err := certs[0].Verify(x509.VerifyOptions{
		Roots:         roots,
		Intermediates: inter,
		DNSName:       serverName,
		CurrentTime:   now,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrServerNotTrusted, err)
	}
	return ca, nil
}

// FingerprintVerifier returns a tls.Config.VerifyConnection hook for
// enrollment: it runs VerifyServerAgainstFingerprint on the presented chain,
// so the handshake fails before any secret is sent.
func FingerprintVerifier(serverName string, fp [32]byte, now func() time.Time) func(tls.ConnectionState) error {
	if now == nil {
		now = time.Now
	}
	return func(cs tls.ConnectionState) error {
		_, err := VerifyServerAgainstFingerprint(cs.PeerCertificates, serverName, fp, now())
		return err
	}
}

// Identity is an enrolled client: its key, certificate and pinned CA.
type Identity struct {
	Key  crypto.Signer
	Cert *x509.Certificate
	CA   *x509.Certificate
}

// TLSCertificate returns the client certificate for crypto/tls.
func (id *Identity) TLSCertificate() tls.Certificate {
	return tls.Certificate{Certificate: [][]byte{id.Cert.Raw}, PrivateKey: id.Key, Leaf: id.Cert}
}

// CAPool returns a pool holding only the pinned CA: the client's RootCAs.
func (id *Identity) CAPool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(id.CA)
	return p
}

// ClientName returns the name the CA gave this client.
func (id *Identity) ClientName() (string, error) { return ClientName(id.Cert) }

// WriteIdentity checks that keyPEM, certPEM and caPEM form an identity (the
// key belongs to the certificate, which the CA signed for client
// authentication) and writes them to dir as client.key (0600), client.crt
// and ca.crt (0644), creating dir with mode 0700. Each file is replaced
// atomically; the key is written before the certificate.
func WriteIdentity(dir string, keyPEM, certPEM, caPEM []byte) error {
	if _, err := parseIdentity(keyPEM, certPEM, caPEM); err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("write identity: %w", err)
	}
	if err := atomicfile.Write(filepath.Join(dir, CACertFile), caPEM, 0o644); err != nil {
		return fmt.Errorf("write identity: %w", err)
	}
	if err := atomicfile.Write(filepath.Join(dir, ClientKeyFile), keyPEM, 0o600); err != nil {
		return fmt.Errorf("write identity: %w", err)
	}
	if err := atomicfile.Write(filepath.Join(dir, ClientCertFile), certPEM, 0o644); err != nil {
		return fmt.Errorf("write identity: %w", err)
	}
	return nil
}

// LoadIdentity reads an identity directory. It refuses a client.key that
// group or others may access (ErrKeyPermissions) and files that do not form
// an identity (ErrBadIdentity).
func LoadIdentity(dir string) (*Identity, error) {
	keyPEM, err := readPrivateFile(filepath.Join(dir, ClientKeyFile))
	if err != nil {
		return nil, fmt.Errorf("load identity: %w", err)
	}
	certPEM, err := readPublicFile(filepath.Join(dir, ClientCertFile))
	if err != nil {
		return nil, fmt.Errorf("load identity: %w", err)
	}
	caPEM, err := readPublicFile(filepath.Join(dir, CACertFile))
	if err != nil {
		return nil, fmt.Errorf("load identity: %w", err)
	}
	id, err := parseIdentity(keyPEM, certPEM, caPEM)
	if err != nil {
		return nil, fmt.Errorf("load identity %s: %w", dir, err)
	}
	return id, nil
}

func parseIdentity(keyPEM, certPEM, caPEM []byte) (*Identity, error) {
	key, err := ParseKeyPEM(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("%w: key: %w", ErrBadIdentity, err)
	}
	cert, err := ParseCertPEM(certPEM)
	if err != nil {
		return nil, fmt.Errorf("%w: certificate: %w", ErrBadIdentity, err)
	}
	ca, err := ParseCertPEM(caPEM)
	if err != nil {
		return nil, fmt.Errorf("%w: CA: %w", ErrBadIdentity, err)
	}
	if !sameKey(key, cert.PublicKey) {
		return nil, fmt.Errorf("%w: key does not belong to the certificate", ErrBadIdentity)
	}
	if !ca.IsCA {
		return nil, fmt.Errorf("%w: ca.crt is not a CA certificate", ErrBadIdentity)
	}
	if err := cert.CheckSignatureFrom(ca); err != nil {
		return nil, fmt.Errorf("%w: certificate not signed by the CA: %w", ErrBadIdentity, err)
	}
	clientAuth := false
	for _, u := range cert.ExtKeyUsage {
		clientAuth = clientAuth || u == x509.ExtKeyUsageClientAuth
	}
	if !clientAuth {
		return nil, fmt.Errorf("%w: certificate is not for client authentication", ErrBadIdentity)
	}
	return &Identity{Key: key, Cert: cert, CA: ca}, nil
}

// ServerFile is the identity directory's record of the server it enrolled
// with: one line "HOST:PORT\n", mode 0644.
const ServerFile = "server"

// ErrNoServerFile: the identity directory records no server (enrolled by
// a coffer before it wrote one).
var ErrNoServerFile = errors.New("identity directory records no server")

// WriteServerAddr writes addr (HOST:PORT) to dir/server, atomically.
func WriteServerAddr(dir, addr string) error {
	if _, _, err := net.SplitHostPort(addr); err != nil || strings.ContainsAny(addr, " \t\r\n") {
		return fmt.Errorf("write %s: server address %q is not HOST:PORT", ServerFile, addr)
	}
	return atomicfile.Write(filepath.Join(dir, ServerFile), []byte(addr+"\n"), 0o644)
}

// ReadServerAddr reads dir/server: ErrNoServerFile if there is none, an
// error naming the file if it does not hold one HOST:PORT line.
func ReadServerAddr(dir string) (string, error) {
	path := filepath.Join(dir, ServerFile)
	b, err := readPublicFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("%w: %s is missing (give the server's HOST:PORT, or enroll again)", ErrNoServerFile, path)
	}
	if err != nil {
		return "", err
	}
	addr := strings.TrimSuffix(string(b), "\n")
	if _, _, err := net.SplitHostPort(addr); err != nil || addr == "" || strings.ContainsAny(addr, " \t\r\n") {
		return "", fmt.Errorf("%s: want one line HOST:PORT, got %q", path, string(b))
	}
	return addr, nil
}
