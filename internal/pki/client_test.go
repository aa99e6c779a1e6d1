package pki_test

import (
	"crypto/x509"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coffer-backup/coffer/internal/pki"
)

func TestVerifyServerAgainstFingerprint(t *testing.T) {
	ca, _ := pki.NewCA("real", now)
	srv, _ := ca.IssueServer([]string{"backup.example.com", "127.0.0.1"}, now)
	rogueCA, _ := pki.NewCA("rogue", now)
	rogueSrv, _ := rogueCA.IssueServer([]string{"backup.example.com"}, now)
	fp := ca.Fingerprint()

	got, err := pki.VerifyServerAgainstFingerprint([]*x509.Certificate{srv.Cert, ca.Cert}, "backup.example.com", fp, now)
	if err != nil || !got.Equal(ca.Cert) {
		t.Fatalf("genuine server: %v", err)
	}
	if _, err := pki.VerifyServerAgainstFingerprint([]*x509.Certificate{srv.Cert, ca.Cert}, "127.0.0.1", fp, now); err != nil {
		t.Fatalf("genuine server by IP: %v", err)
	}
	cases := []struct {
		name  string
		chain []*x509.Certificate
		host  string
		at    time.Time
		want  error
	}{
		{"rogue CA", []*x509.Certificate{rogueSrv.Cert, rogueCA.Cert}, "backup.example.com", now, pki.ErrFingerprintMismatch},
		{"no CA in chain", []*x509.Certificate{srv.Cert}, "backup.example.com", now, pki.ErrFingerprintMismatch},
		// The real CA certificate is public: a rogue server can send it
		// along, but its leaf does not chain to it.
		{"rogue leaf with real CA", []*x509.Certificate{rogueSrv.Cert, ca.Cert}, "backup.example.com", now, pki.ErrServerNotTrusted},
		{"CA as leaf", []*x509.Certificate{ca.Cert}, "backup.example.com", now, pki.ErrServerNotTrusted},
		{"wrong host", []*x509.Certificate{srv.Cert, ca.Cert}, "evil.example.com", now, pki.ErrServerNotTrusted},
		{"no host", []*x509.Certificate{srv.Cert, ca.Cert}, "", now, pki.ErrServerNotTrusted},
		{"expired", []*x509.Certificate{srv.Cert, ca.Cert}, "backup.example.com", now.Add(pki.ServerValidity + time.Hour), pki.ErrServerNotTrusted},
		{"empty", nil, "backup.example.com", now, pki.ErrServerNotTrusted},
	}
	for _, c := range cases {
		if _, err := pki.VerifyServerAgainstFingerprint(c.chain, c.host, fp, c.at); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
	// A client certificate of the right CA is not a server certificate.
	key, _ := pki.NewClientKey()
	csr, _ := pki.NewCSR(key, "alice")
	der, _, _ := ca.SignClient(csr, "alice", time.Hour, now)
	cc, _ := x509.ParseCertificate(der)
	if _, err := pki.VerifyServerAgainstFingerprint([]*x509.Certificate{cc, ca.Cert}, "alice", fp, now); !errors.Is(err, pki.ErrServerNotTrusted) {
		t.Errorf("client cert as server: %v", err)
	}
}

func enrolled(t *testing.T, ca *pki.CA, name string) (keyPEM, certPEM []byte) {
	t.Helper()
	key, err := pki.NewClientKey()
	if err != nil {
		t.Fatal(err)
	}
	csr, err := pki.NewCSR(key, name)
	if err != nil {
		t.Fatal(err)
	}
	der, _, err := ca.SignClient(csr, name, time.Hour, now)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, err = pki.EncodeKeyPEM(key)
	if err != nil {
		t.Fatal(err)
	}
	return keyPEM, pki.EncodeCertPEM(der)
}

func TestIdentityFiles(t *testing.T) {
	ca, _ := pki.NewCA("real", now)
	keyPEM, certPEM := enrolled(t, ca, "alice")
	dir := filepath.Join(t.TempDir(), "identity")
	if err := pki.WriteIdentity(dir, keyPEM, certPEM, ca.CertPEM()); err != nil {
		t.Fatal(err)
	}
	modes := map[string]os.FileMode{".": 0o700, pki.ClientKeyFile: 0o600, pki.ClientCertFile: 0o644, pki.CACertFile: 0o644}
	for name, want := range modes {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s mode %#o, want %#o", name, fi.Mode().Perm(), want)
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 3 {
		t.Fatalf("identity dir has %d entries, want 3", len(entries))
	}
	id, err := pki.LoadIdentity(dir)
	if err != nil {
		t.Fatal(err)
	}
	if name, err := id.ClientName(); err != nil || name != "alice" || !id.CA.Equal(ca.Cert) {
		t.Fatalf("identity %q %v", name, err)
	}
	if tc := id.TLSCertificate(); len(tc.Certificate) != 1 || tc.PrivateKey == nil {
		t.Fatal("TLS certificate")
	}

	// Renewal replaces the files in place.
	keyPEM2, certPEM2 := enrolled(t, ca, "alice")
	if err := pki.WriteIdentity(dir, keyPEM2, certPEM2, ca.CertPEM()); err != nil {
		t.Fatal(err)
	}
	id2, err := pki.LoadIdentity(dir)
	if err != nil || id2.Cert.Equal(id.Cert) {
		t.Fatalf("renewed identity not loaded: %v", err)
	}

	for _, mode := range []os.FileMode{0o644, 0o640, 0o604} {
		_ = os.Chmod(filepath.Join(dir, pki.ClientKeyFile), mode)
		if _, err := pki.LoadIdentity(dir); !errors.Is(err, pki.ErrKeyPermissions) || !strings.Contains(err.Error(), "chmod 600") {
			t.Fatalf("client.key mode %#o: %v", mode, err)
		}
	}
	_ = os.Chmod(filepath.Join(dir, pki.ClientKeyFile), 0o600)

	// Inconsistent files are refused before anything is written.
	other, _ := pki.NewCA("other", now)
	otherKey, otherCert := enrolled(t, other, "alice")
	bad := map[string][3][]byte{
		"key of another cert": {otherKey, certPEM2, ca.CertPEM()},
		"cert of another CA":  {otherKey, otherCert, ca.CertPEM()},
		"CA is a leaf":        {keyPEM2, certPEM2, certPEM2},
		"garbage key":         {[]byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"), certPEM2, ca.CertPEM()},
		"two certs":           {keyPEM2, append(append([]byte(nil), certPEM2...), certPEM2...), ca.CertPEM()},
		"empty":               {nil, nil, nil},
	}
	for name, b := range bad {
		if err := pki.WriteIdentity(dir, b[0], b[1], b[2]); !errors.Is(err, pki.ErrBadIdentity) {
			t.Errorf("%s: %v, want ErrBadIdentity", name, err)
		}
	}
	if id3, err := pki.LoadIdentity(dir); err != nil || !id3.Cert.Equal(id2.Cert) {
		t.Fatalf("a refused write changed the identity: %v", err)
	}

	// The server certificate is not a client identity.
	srv, _ := ca.IssueServer(nil, now)
	srvKey, _ := pki.EncodeKeyPEM(srv.Key)
	if err := pki.WriteIdentity(dir, srvKey, pki.EncodeCertPEM(srv.Cert.Raw), ca.CertPEM()); !errors.Is(err, pki.ErrBadIdentity) {
		t.Fatalf("server cert as identity: %v", err)
	}
}

func TestIdentityUsableByOpenSSL(t *testing.T) {
	openssl, err := exec.LookPath("openssl")
	if err != nil {
		t.Skip("openssl not installed")
	}
	ca, _ := pki.NewCA("real", now.Add(-time.Hour).Truncate(time.Second))
	keyPEM, certPEM := enrolled(t, ca, "alice")
	dir := t.TempDir()
	if err := pki.WriteIdentity(dir, keyPEM, certPEM, ca.CertPEM()); err != nil {
		t.Fatal(err)
	}
	// openssl reads the PKCS #8 key and checks the certificate's signature.
	out, err := exec.Command(openssl, "pkey", "-in", filepath.Join(dir, pki.ClientKeyFile), "-noout").CombinedOutput() // #nosec G204 -- test runs openssl on its own files
	if err != nil {
		t.Fatalf("openssl pkey: %v\n%s", err, out)
	}
	out, err = exec.Command(openssl, "verify", "-no_check_time", "-purpose", "sslclient", "-CAfile", filepath.Join(dir, pki.CACertFile), filepath.Join(dir, pki.ClientCertFile)).CombinedOutput() // #nosec G204 -- test runs openssl on its own files
	if err != nil || !strings.Contains(string(out), "OK") {
		t.Fatalf("openssl verify: %v\n%s", err, out)
	}
}

// The server side must not be able to decrypt: pki may not import the
// client's key material packages.
func TestImportGraph(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go tool not in PATH")
	}
	out, err := exec.Command(goBin, "list", "-deps", "github.com/coffer-backup/coffer/internal/pki").Output() // #nosec G204 -- fixed arguments
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	deps := strings.Fields(string(out))
	if !slices.Contains(deps, "crypto/x509") {
		t.Fatalf("go list output does not look like a dependency list: %q", out)
	}
	for _, dep := range deps {
		if strings.HasPrefix(dep, "github.com/coffer-backup/coffer/internal/") &&
			(strings.HasSuffix(dep, "/internal/crypto") || strings.HasSuffix(dep, "/internal/keyring") ||
				strings.Contains(dep, "/internal/crypto/") || strings.Contains(dep, "/internal/keyring/")) {
			t.Errorf("pki depends on %s", dep)
		}
	}
}
