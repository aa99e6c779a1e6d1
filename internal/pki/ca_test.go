package pki

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

var testNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func newTestCA(t testing.TB) *CA {
	t.Helper()
	ca, err := NewCA("coffer test CA", testNow)
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

func TestNewCAProfile(t *testing.T) {
	ca := newTestCA(t)
	c := ca.Cert
	if !c.IsCA || !c.BasicConstraintsValid || c.MaxPathLen != 0 || !c.MaxPathLenZero {
		t.Fatalf("CA constraints: IsCA=%v MaxPathLen=%d zero=%v", c.IsCA, c.MaxPathLen, c.MaxPathLenZero)
	}
	if c.KeyUsage != x509.KeyUsageCertSign|x509.KeyUsageCRLSign {
		t.Fatalf("key usage %v", c.KeyUsage)
	}
	if got := c.NotAfter.Sub(testNow); got != CAValidity {
		t.Fatalf("validity %v, want %v", got, CAValidity)
	}
	pub, ok := c.PublicKey.(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P256() {
		t.Fatalf("CA key %T, want ECDSA P-256", c.PublicKey)
	}
	if err := c.CheckSignatureFrom(c); err != nil {
		t.Fatalf("not self-signed: %v", err)
	}
	// MaxPathLen 0: a certificate the CA signs cannot itself sign.
	sub := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "sub"}, NotBefore: testNow, NotAfter: testNow.Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	subKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	subDER, err := x509.CreateCertificate(rand.Reader, sub, ca.Cert, subKey.Public(), ca.Key)
	if err != nil {
		t.Fatal(err)
	}
	subCert, _ := x509.ParseCertificate(subDER)
	leafTmpl := &x509.Certificate{SerialNumber: big.NewInt(8), NotBefore: testNow, NotAfter: testNow.Add(time.Hour), DNSNames: []string{"x"},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, subCert, subKey.Public(), subKey)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(leafDER)
	inter := x509.NewCertPool()
	inter.AddCert(subCert)
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: ca.Pool(), Intermediates: inter, CurrentTime: testNow.Add(time.Minute), DNSName: "x"}); err == nil {
		t.Fatal("a chain through an intermediate verified under a MaxPathLen 0 CA")
	}
	if _, err := NewCA("", testNow); !errors.Is(err, ErrInvalidName) {
		t.Fatalf("empty CA name: %v", err)
	}
}

func TestCASaveLoad(t *testing.T) {
	ca := newTestCA(t)
	dir := filepath.Join(t.TempDir(), "state")
	if err := ca.SaveFiles(dir); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, CAKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("ca.key mode %#o, want 0600", fi.Mode().Perm())
	}
	if di, _ := os.Stat(dir); di.Mode().Perm() != 0o700 {
		t.Fatalf("state dir mode %#o, want 0700", di.Mode().Perm())
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 2 {
		t.Fatalf("state dir holds %d entries (temp files left?), want 2", len(entries))
	}
	got, err := LoadCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got.Fingerprint() != ca.Fingerprint() || !got.Cert.Equal(ca.Cert) {
		t.Fatal("loaded CA differs")
	}
	if err := ca.SaveFiles(dir); !errors.Is(err, os.ErrExist) {
		t.Fatalf("second SaveFiles: %v, want ErrExist (never replace a CA)", err)
	}

	keyPath := filepath.Join(dir, CAKeyFile)
	for _, mode := range []os.FileMode{0o640, 0o604, 0o660} {
		if err := os.Chmod(keyPath, mode); err != nil {
			t.Fatal(err)
		}
		_, err := LoadCA(dir)
		if !errors.Is(err, ErrKeyPermissions) || !strings.Contains(err.Error(), keyPath) || !strings.Contains(err.Error(), "chmod 600") {
			t.Fatalf("mode %#o: %v, want ErrKeyPermissions naming %s and chmod 600", mode, err, keyPath)
		}
	}
	if err := os.Chmod(keyPath, 0o600); err != nil {
		t.Fatal(err)
	}

	// A CA certificate that does not match the key is refused.
	other := newTestCA(t)
	if err := os.WriteFile(filepath.Join(dir, CACertFile), other.CertPEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadCA(dir); !errors.Is(err, ErrNotCA) {
		t.Fatalf("mismatched ca.crt: %v, want ErrNotCA", err)
	}
}

func TestIssueServer(t *testing.T) {
	ca := newTestCA(t)
	kp, err := ca.IssueServer(nil, testNow)
	if err != nil {
		t.Fatal(err)
	}
	c := kp.Cert
	if len(c.DNSNames) != 1 || c.DNSNames[0] != "localhost" || len(c.IPAddresses) != 2 ||
		!c.IPAddresses[0].Equal(net.ParseIP("127.0.0.1")) || !c.IPAddresses[1].Equal(net.IPv6loopback) {
		t.Fatalf("default SANs %v %v", c.DNSNames, c.IPAddresses)
	}
	if len(c.ExtKeyUsage) != 1 || c.ExtKeyUsage[0] != x509.ExtKeyUsageServerAuth || c.IsCA {
		t.Fatalf("server profile: eku %v ca %v", c.ExtKeyUsage, c.IsCA)
	}
	if got := c.NotAfter.Sub(testNow); got != ServerValidity {
		t.Fatalf("validity %v", got)
	}
	for _, name := range []string{"localhost", "127.0.0.1", "::1"} {
		if _, err := c.Verify(x509.VerifyOptions{Roots: ca.Pool(), DNSName: name, CurrentTime: testNow}); err != nil {
			t.Fatalf("verify for %s: %v", name, err)
		}
	}
	kp, err = ca.IssueServer([]string{"Backup.Example.com", "10.0.0.5"}, testNow)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kp.Cert.Verify(x509.VerifyOptions{Roots: ca.Pool(), DNSName: "backup.example.com", CurrentTime: testNow}); err != nil {
		t.Fatal(err)
	}
	if _, err := kp.Cert.Verify(x509.VerifyOptions{Roots: ca.Pool(), DNSName: "localhost", CurrentTime: testNow}); err == nil {
		t.Fatal("explicit names still include localhost")
	}
	for _, bad := range []string{"a..b", "-a.com", "a_b.com", "a b", "", strings.Repeat("a", 64) + ".com"} {
		if _, err := ca.IssueServer([]string{bad}, testNow); !errors.Is(err, ErrInvalidName) {
			t.Fatalf("server name %q: %v, want ErrInvalidName", bad, err)
		}
	}

	dir := t.TempDir()
	if err := kp.SaveFiles(dir, ServerCertFile, ServerKeyFile); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(filepath.Join(dir, ServerKeyFile)); fi.Mode().Perm() != 0o600 {
		t.Fatalf("server.key mode %#o", fi.Mode().Perm())
	}
	back, err := LoadKeyPair(dir, ServerCertFile, ServerKeyFile)
	if err != nil || !back.Cert.Equal(kp.Cert) {
		t.Fatalf("LoadKeyPair: %v", err)
	}
	_ = os.Chmod(filepath.Join(dir, ServerKeyFile), 0o644)
	if _, err := LoadKeyPair(dir, ServerCertFile, ServerKeyFile); !errors.Is(err, ErrKeyPermissions) {
		t.Fatalf("world-readable server.key: %v", err)
	}
	tc := kp.TLSCertificate(ca.Cert)
	if len(tc.Certificate) != 2 || tc.Leaf != kp.Cert {
		t.Fatal("TLS certificate must carry [leaf, CA]")
	}
}

func csrFor(t testing.TB, key any, cn string, extra func(*x509.CertificateRequest)) []byte {
	t.Helper()
	tmpl := &x509.CertificateRequest{Subject: pkix.Name{CommonName: cn}}
	if extra != nil {
		extra(tmpl)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func TestSignClient(t *testing.T) {
	ca := newTestCA(t)
	key, _ := NewClientKey()
	// The CSR asks for another name, a DNS SAN and CA rights: all ignored.
	csr := csrFor(t, key, "admin", func(r *x509.CertificateRequest) {
		r.DNSNames = []string{"server.example.com"}
		r.ExtraExtensions = nil
	})
	der, serial, err := ca.SignClient(csr, "alice", 24*time.Hour, testNow)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	if name, err := ClientName(c); err != nil || name != "alice" {
		t.Fatalf("ClientName = %q, %v; want alice", name, err)
	}
	if len(c.DNSNames) != 0 || c.IsCA || len(c.ExtKeyUsage) != 1 || c.ExtKeyUsage[0] != x509.ExtKeyUsageClientAuth {
		t.Fatalf("client profile: dns %v ca %v eku %v", c.DNSNames, c.IsCA, c.ExtKeyUsage)
	}
	if c.SerialNumber.Cmp(serial) != 0 || serial.BitLen() > 128 || serial.BitLen() < 64 {
		t.Fatalf("serial %v (bits %d)", serial, serial.BitLen())
	}
	if _, err := c.Verify(x509.VerifyOptions{Roots: ca.Pool(), CurrentTime: testNow, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Verify(x509.VerifyOptions{Roots: ca.Pool(), CurrentTime: testNow, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err == nil {
		t.Fatal("client certificate usable for server auth")
	}
	if !c.NotAfter.Equal(testNow.Add(24 * time.Hour)) {
		t.Fatalf("NotAfter %v", c.NotAfter)
	}
	// Serials are random.
	_, s2, _ := ca.SignClient(csr, "alice", time.Hour, testNow)
	if s2.Cmp(serial) == 0 {
		t.Fatal("two certificates share a serial")
	}
	// Never beyond the CA.
	der, _, err = ca.SignClient(csr, "alice", 20*CAValidity, testNow)
	if err != nil {
		t.Fatal(err)
	}
	c, _ = x509.ParseCertificate(der)
	if !c.NotAfter.Equal(ca.Cert.NotAfter) {
		t.Fatalf("NotAfter %v beyond CA %v", c.NotAfter, ca.Cert.NotAfter)
	}
	// Ed25519 accepted.
	_, edKey, _ := ed25519.GenerateKey(rand.Reader)
	if _, _, err := ca.SignClient(csrFor(t, edKey, "x", nil), "bob", time.Hour, testNow); err != nil {
		t.Fatalf("Ed25519 CSR: %v", err)
	}
}

func TestSignClientRefuses(t *testing.T) {
	ca := newTestCA(t)
	key, _ := NewClientKey()
	good := csrFor(t, key, "x", nil)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	rsaKey, err := rsa.GenerateKey(rand.Reader, 1024) // #nosec G403 -- deliberately weak key the CA must refuse
	if err != nil {
		t.Fatal(err)
	}
	tampered := append([]byte(nil), good...)
	tampered[len(tampered)-5] ^= 1 // inside the signature
	cases := map[string][]byte{
		"P-384 key":      csrFor(t, p384, "x", nil),
		"RSA key":        csrFor(t, rsaKey, "x", nil),
		"bad signature":  tampered,
		"garbage":        []byte("not a csr"),
		"empty":          nil,
		"truncated":      good[:len(good)/2],
		"oversized":      make([]byte, 17<<10),
		"trailing bytes": append(append([]byte(nil), good...), 0),
	}
	for name, csr := range cases {
		if _, _, err := ca.SignClient(csr, "alice", time.Hour, testNow); !errors.Is(err, ErrBadCSR) {
			t.Errorf("%s: %v, want ErrBadCSR", name, err)
		}
	}
	for _, bad := range []string{"", "Alice", "../x", "a..b", ".a", "a/b", "a\x00", strings.Repeat("a", 64)} {
		if _, _, err := ca.SignClient(good, bad, time.Hour, testNow); !errors.Is(err, ErrInvalidName) {
			t.Errorf("client name %q: %v, want ErrInvalidName", bad, err)
		}
	}
	if _, _, err := ca.SignClient(good, "alice", 0, testNow); err == nil {
		t.Error("zero ttl accepted")
	}
	if _, _, err := ca.SignClient(good, "alice", time.Hour, ca.Cert.NotAfter.Add(time.Hour)); err == nil {
		t.Error("signed after the CA expired")
	}
}

func FuzzSignClient(f *testing.F) {
	ca := newTestCA(f)
	key, _ := NewClientKey()
	good := csrFor(f, key, "x", nil)
	f.Add(good)
	f.Add([]byte{0x30, 0x03, 0x02, 0x01, 0x00})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, csr []byte) {
		der, serial, err := ca.SignClient(csr, "fuzz", time.Hour, testNow)
		if err != nil {
			if !errors.Is(err, ErrBadCSR) {
				t.Fatalf("error %v does not wrap ErrBadCSR", err)
			}
			return
		}
		c, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		if name, err := ClientName(c); err != nil || name != "fuzz" || c.SerialNumber.Cmp(serial) != 0 {
			t.Fatalf("issued %q %v", name, err)
		}
	})
}

func TestClientNameRejectsForeign(t *testing.T) {
	ca := newTestCA(t)
	kp, _ := ca.IssueServer(nil, testNow)
	if _, err := ClientName(kp.Cert); err == nil {
		t.Fatal("server certificate accepted as a client name")
	}
}

func TestNeedsRenewal(t *testing.T) {
	c := &x509.Certificate{NotBefore: testNow, NotAfter: testNow.Add(90 * time.Hour)}
	for _, tc := range []struct {
		at   time.Duration
		want bool
	}{{0, false}, {59 * time.Hour, false}, {60 * time.Hour, true}, {89 * time.Hour, true}, {200 * time.Hour, true}} {
		if got := NeedsRenewal(c, testNow.Add(tc.at)); got != tc.want {
			t.Errorf("at +%v: %v, want %v", tc.at, got, tc.want)
		}
	}
}

func TestRevocationList(t *testing.T) {
	var r RevocationList
	a, b := big.NewInt(1), new(big.Int).Lsh(big.NewInt(1), 127)
	if r.Contains(a) || r.Contains(nil) || r.Len() != 0 {
		t.Fatal("zero list not empty")
	}
	r.Add(a)
	if !r.Contains(big.NewInt(1)) || r.Contains(b) {
		t.Fatal("Add")
	}
	if err := r.Check(&x509.Certificate{SerialNumber: big.NewInt(1)}); !errors.Is(err, ErrRevoked) {
		t.Fatalf("Check: %v", err)
	}
	r.Replace([]*big.Int{b})
	if r.Contains(a) || !r.Contains(b) || r.Len() != 1 {
		t.Fatal("Replace")
	}
	// Concurrent readers and writers (run with -race).
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(2)
		go func(i int) {
			defer wg.Done()
			for j := 0; j < 200; j++ {
				r.Add(big.NewInt(int64(i*1000 + j)))
			}
		}(i)
		go func() {
			defer wg.Done()
			for j := 0; j < 200; j++ {
				_ = r.Contains(b)
			}
		}()
	}
	wg.Wait()
	if !r.Contains(big.NewInt(7199)) || !r.Contains(b) {
		t.Fatal("lost a concurrent Add")
	}
}

func TestFormatFingerprint(t *testing.T) {
	t.Parallel()
	var fp [32]byte
	for i := range fp {
		fp[i] = byte(i * 9)
	}
	got := FormatFingerprint(fp)
	if len(got) != 32*3-1 || !strings.HasPrefix(got, "00:09:12:1B:") || !strings.HasSuffix(got, ":FC:05:0E:17") {
		t.Fatalf("FormatFingerprint = %s", got)
	}
}
