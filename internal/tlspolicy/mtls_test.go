package tlspolicy

import (
	"bytes"
	"crypto/tls"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coffer-backup/coffer/internal/pki"
)

// policyServer runs an echo server behind ServerConfig and Listen, with
// revocation checked in VerifyConnection. resumed counts VerifyConnection
// calls on resumed sessions.
type policyServer struct {
	*testPKI
	addr    string
	revoked *pki.RevocationList
	log     *memLog
	echo    *echoServer
	resumed atomic.Int32
}

func startPolicyServer(t *testing.T) *policyServer {
	t.Helper()
	s := &policyServer{testPKI: newPKI(t), revoked: new(pki.RevocationList), log: new(memLog)}
	p := Default()
	cfg := p.ServerConfig(s.serverCert(), s.ca.Pool(), func(cs tls.ConnectionState) error {
		if cs.DidResume {
			s.resumed.Add(1)
		}
		return s.revoked.VerifyConnection(cs)
	})
	l := p.Listen(listenTCP(t), cfg, s.log, ListenerOptions{HandshakeTimeout: 3 * time.Second})
	s.addr = l.Addr().String()
	s.echo = serveEcho(t, l)
	return s
}

func (s *policyServer) kinds() []string {
	var k []string
	for _, r := range s.log.records() {
		k = append(k, r.Kind)
	}
	return k
}

func TestMutualTLS(t *testing.T) {
	s := startPolicyServer(t)
	p := Default()
	cert, _ := s.client(t, "alice")

	cs, err := roundTrip(s.addr, p.ClientConfig(cert, s.ca.Pool(), "127.0.0.1"), "hello")
	if err != nil {
		t.Fatalf("enrolled client: %v", err)
	}
	if cs.Version != tls.VersionTLS13 || cs.CurveID != tls.X25519MLKEM768 || cs.NegotiatedProtocol != "h2" {
		t.Fatalf("negotiated %x %v %q; want TLS 1.3 with X25519MLKEM768 and h2", cs.Version, cs.CurveID, cs.NegotiatedProtocol)
	}

	// TLS 1.2 is allowed too, with an AEAD suite.
	c12 := p.ClientConfig(cert, s.ca.Pool(), "localhost")
	c12.MaxVersion = tls.VersionTLS12
	if cs, err := roundTrip(s.addr, c12, "v12"); err != nil || cs.Version != tls.VersionTLS12 || !slices.Contains(p.CipherSuites, cs.CipherSuite) {
		t.Fatalf("TLS 1.2 client: %v (suite %s)", err, tls.CipherSuiteName(cs.CipherSuite))
	}

	t.Run("NoCertificate", func(t *testing.T) {
		cfg := p.ClientConfig(tls.Certificate{}, s.ca.Pool(), "localhost")
		cfg.Certificates = nil
		if _, err := roundTrip(s.addr, cfg, "secret"); err == nil {
			t.Fatal("client without certificate served")
		}
		waitFor(t, "no-certificate refusal", func() bool { return slices.Contains(s.kinds(), KindNoCertificate) })
	})

	t.Run("OtherCA", func(t *testing.T) {
		other := newPKI(t)
		foreign, _ := other.client(t, "alice")
		if _, err := roundTrip(s.addr, p.ClientConfig(foreign, s.ca.Pool(), "localhost"), "secret"); err == nil {
			t.Fatal("certificate from another CA accepted")
		}
		waitFor(t, "bad-certificate refusal", func() bool { return slices.Contains(s.kinds(), KindBadCert) })
	})

	t.Run("ServerCertAsClient", func(t *testing.T) {
		// Signed by the right CA but for server authentication only.
		if _, err := roundTrip(s.addr, p.ClientConfig(s.serverCert(), s.ca.Pool(), "localhost"), "secret"); err == nil {
			t.Fatal("server certificate accepted as a client certificate")
		}
	})

	t.Run("RevokedIncludingResumption", func(t *testing.T) {
		bob, bobCert := s.client(t, "bob")
		cfg := p.ClientConfig(bob, s.ca.Pool(), "localhost")
		if _, err := roundTrip(s.addr, cfg, "one"); err != nil {
			t.Fatal(err)
		}
		// Resumption works with the shared session cache...
		cs, err := roundTrip(s.addr, cfg, "two")
		if err != nil || !cs.DidResume {
			t.Fatalf("second connection did not resume (err %v): the revocation test below would prove nothing", err)
		}
		before := s.resumed.Load()
		if before == 0 {
			t.Fatal("VerifyConnection not called on the resumed session")
		}
		// ...and revocation refuses the resumed session too.
		s.revoked.Add(bobCert.SerialNumber)
		_, err = roundTrip(s.addr, cfg, "three")
		if err == nil {
			t.Fatal("revoked client served on a resumed session")
		}
		if s.resumed.Load() <= before {
			t.Fatal("the refused connection was not a resumption; the test did not exercise resumed sessions")
		}
		waitFor(t, "rejected refusal", func() bool { return slices.Contains(s.kinds(), KindRejected) })
		// A fresh full handshake is refused as well.
		fresh := p.ClientConfig(bob, s.ca.Pool(), "localhost")
		fresh.ClientSessionCache = nil
		if _, err := roundTrip(s.addr, fresh, "four"); err == nil {
			t.Fatal("revoked client served on a full handshake")
		}
		if got := s.echo.got(); bytes.Contains(got, []byte("three")) || bytes.Contains(got, []byte("four")) {
			t.Fatalf("server application read data of a revoked client: %q", got)
		}
		// Others are unaffected.
		if _, err := roundTrip(s.addr, p.ClientConfig(cert, s.ca.Pool(), "localhost"), "still"); err != nil {
			t.Fatal(err)
		}
	})

	for _, r := range s.log.records() {
		if r.Peer == "" || r.Reason == "" || len(r.OfferedVersions) == 0 || len(r.OfferedSuites) == 0 || r.Time.IsZero() {
			t.Errorf("incomplete refusal record %+v", r)
		}
	}
}

func TestRogueServerRefusedBeforeData(t *testing.T) {
	real := newPKI(t)
	rogue := startPolicyServer(t) // its own CA, otherwise a perfect server
	p := Default()
	cert, _ := real.client(t, "alice")

	// An enrolled client pins its CA.
	if _, err := roundTrip(rogue.addr, p.ClientConfig(cert, real.ca.Pool(), "localhost"), "repository secret"); err == nil {
		t.Fatal("client accepted a server of another CA")
	}
	// An enrolling client checks the token's fingerprint.
	fpCfg := p.EnrollmentConfig("localhost", pki.FingerprintVerifier("localhost", real.ca.Fingerprint(), nil))
	var verr error
	if _, verr = roundTrip(rogue.addr, fpCfg, "cfr1.token-secret"); !errors.Is(verr, pki.ErrFingerprintMismatch) {
		t.Fatalf("enrollment against a rogue server: %v, want ErrFingerprintMismatch", verr)
	}
	// Nothing reached the rogue server's application.
	time.Sleep(50 * time.Millisecond)
	if got := rogue.echo.got(); len(got) != 0 {
		t.Fatalf("rogue server received %q", got)
	}
	// The rogue server saw the client give up.
	waitFor(t, "rogue server's refusals", func() bool { return len(rogue.log.records()) >= 2 })
}

func TestEnrollmentConnection(t *testing.T) {
	s := startPolicyServer(t)
	p := Default()
	for _, host := range []string{"localhost", "127.0.0.1"} {
		cfg := p.EnrollmentConfig(host, pki.FingerprintVerifier(host, s.ca.Fingerprint(), nil))
		cs, err := roundTrip(s.addr, cfg, "token")
		if err != nil {
			t.Fatalf("enrollment to %s: %v", host, err)
		}
		if cs.NegotiatedProtocol != EnrollmentProto || len(cs.PeerCertificates) != 2 {
			t.Fatalf("enrollment negotiated %q with %d certificates", cs.NegotiatedProtocol, len(cs.PeerCertificates))
		}
	}
	// The wrong name is refused even with the right CA.
	cfg := p.EnrollmentConfig("evil.example", pki.FingerprintVerifier("evil.example", s.ca.Fingerprint(), nil))
	if _, err := roundTrip(s.addr, cfg, "token"); !errors.Is(err, pki.ErrServerNotTrusted) {
		t.Fatalf("wrong server name: %v", err)
	}
	// Offering the enrollment protocol next to others does not waive the
	// client certificate.
	mixed := p.EnrollmentConfig("localhost", pki.FingerprintVerifier("localhost", s.ca.Fingerprint(), nil))
	mixed.NextProtos = []string{EnrollmentProto, "h2"}
	if _, err := roundTrip(s.addr, mixed, "data"); err == nil {
		t.Fatal("mixed ALPN served without a client certificate")
	}
	if got := string(s.echo.got()); strings.Contains(got, "data") {
		t.Fatalf("server read %q from a client without a certificate", got)
	}
	defer func() {
		if recover() == nil {
			t.Error("EnrollmentConfig without verify did not panic")
		}
	}()
	p.EnrollmentConfig("localhost", nil)
}

func TestOpenSSLRefusesOldVersions(t *testing.T) {
	openssl, err := exec.LookPath("openssl")
	if err != nil {
		t.Skip("openssl not installed")
	}
	s := startPolicyServer(t)
	dir := t.TempDir()
	key, _ := pki.NewClientKey()
	csr, _ := pki.NewCSR(key, "alice")
	der, _, err := s.ca.SignClient(csr, "alice", time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, _ := pki.EncodeKeyPEM(key)
	if err := pki.WriteIdentity(dir, keyPEM, pki.EncodeCertPEM(der), s.ca.CertPEM()); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) (string, error) {
		base := []string{"s_client", "-connect", s.addr, "-servername", "localhost", "-verify_return_error",
			"-CAfile", filepath.Join(dir, pki.CACertFile),
			"-cert", filepath.Join(dir, pki.ClientCertFile), "-key", filepath.Join(dir, pki.ClientKeyFile)}
		cmd := exec.Command(openssl, append(base, args...)...) // #nosec G204 -- test drives openssl with fixed arguments
		cmd.Stdin = strings.NewReader("")
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	// Controls: the identity files work for openssl with 1.2 and 1.3.
	for _, v := range []string{"-tls1_2", "-tls1_3"} {
		if out, err := run(v); err != nil || !strings.Contains(out, "Verify return code: 0") {
			t.Fatalf("openssl %s against the policy server: %v\n%s", v, err, out)
		}
	}
	// SECLEVEL=0 lets openssl offer TLS 1.0/1.1, so a failure is the server's.
	for _, v := range []string{"-tls1_1", "-tls1"} {
		out, err := run(v, "-cipher", "DEFAULT:@SECLEVEL=0")
		if err == nil {
			t.Fatalf("openssl %s connected:\n%s", v, out)
		}
		if !strings.Contains(out, "alert protocol version") && !strings.Contains(out, "unsupported protocol") {
			t.Fatalf("openssl %s failed for another reason:\n%s", v, out)
		}
	}
	// A 1.2 client offering only CBC suites is refused.
	if out, err := run("-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA"); err == nil {
		t.Fatalf("openssl with CBC suites connected:\n%s", out)
	}
	waitFor(t, "version refusals", func() bool { return slices.Contains(s.kinds(), KindVersion) && slices.Contains(s.kinds(), KindCipher) })
}

// InsecureSkipVerify may appear only where the chain is checked another
// way (enrollment); the scanner's probe lives in internal/tlsscan.
func TestInsecureSkipVerifyConfined(t *testing.T) {
	files, _ := filepath.Glob("*.go")
	allowed := map[string]int{"policy.go": 1}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		n := strings.Count(string(src), "InsecureSkipVerify = true") + strings.Count(string(src), "InsecureSkipVerify: true")
		if n != allowed[f] {
			t.Errorf("%s sets InsecureSkipVerify %d times, want %d", f, n, allowed[f])
		}
	}
}

func TestImportGraph(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go tool not in PATH")
	}
	out, err := exec.Command(goBin, "list", "-deps", "github.com/coffer-backup/coffer/internal/tlspolicy").Output() // #nosec G204 -- fixed arguments
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	deps := strings.Fields(string(out))
	if !slices.Contains(deps, "crypto/tls") {
		t.Fatalf("unexpected go list output %q", out)
	}
	for _, dep := range deps {
		if strings.HasPrefix(dep, "github.com/coffer-backup/coffer/") && dep != "github.com/coffer-backup/coffer/internal/tlspolicy" {
			t.Errorf("tlspolicy depends on %s; it must use the standard library only", dep)
		}
	}
}
