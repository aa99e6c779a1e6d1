package tlsscan

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coffer-backup/coffer/internal/tlspolicy"
)

func accepted[T any](rs []T, ok func(T) bool, name func(T) string) []string {
	var out []string
	for _, r := range rs {
		if ok(r) {
			out = append(out, name(r))
		}
	}
	return out
}

func acceptedVersions(r *Report) []string {
	return accepted(r.Versions, func(v VersionResult) bool { return v.Accepted }, func(v VersionResult) string { return v.Version })
}

func acceptedSuites(r *Report, version string) []string {
	return accepted(r.Suites, func(s SuiteResult) bool { return s.Accepted && s.Version == version }, func(s SuiteResult) string { return s.Suite })
}

func acceptedGroups(r *Report, version string) []string {
	return accepted(r.Groups, func(g GroupResult) bool { return g.Accepted && g.Version == version }, func(g GroupResult) string { return g.Group })
}

func hasFinding(r *Report, sev, substr string) bool {
	return slices.ContainsFunc(r.Findings, func(f Finding) bool { return f.Severity == sev && strings.Contains(f.Message, substr) })
}

// tlsServe runs a TLS server that completes handshakes and closes.
func tlsServe(t *testing.T, cfg *tls.Config) string {
	l, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	serveEcho(t, l)
	return l.Addr().String()
}

func scanOpts() Options { return Options{Timeout: 3 * time.Second, MaxDuration: time.Minute} }

func wantPolicyServerReport(t *testing.T, r *Report) {
	t.Helper()
	if got := acceptedVersions(r); !slices.Equal(got, []string{"TLS 1.2", "TLS 1.3"}) {
		t.Errorf("accepted versions %v", got)
	}
	if got := acceptedSuites(r, "TLS 1.2"); !slices.Equal(got, []string{
		"TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384", "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256"}) {
		t.Errorf("accepted TLS 1.2 suites %v", got)
	}
	if len(acceptedSuites(r, "TLS 1.0"))+len(acceptedSuites(r, "TLS 1.1")) != 0 {
		t.Error("suites accepted at TLS 1.0/1.1")
	}
	if got := acceptedGroups(r, "TLS 1.3"); !slices.Equal(got, []string{"X25519MLKEM768", "SecP256r1MLKEM768", "SecP384r1MLKEM1024", "X25519", "CurveP256", "CurveP384"}) {
		t.Errorf("accepted TLS 1.3 groups %v", got)
	}
	if got := acceptedGroups(r, "TLS 1.2"); !slices.Equal(got, []string{"X25519", "CurveP256", "CurveP384"}) {
		t.Errorf("accepted TLS 1.2 groups %v", got)
	}
	if len(r.TLS13Suites) != 1 || !strings.HasPrefix(r.TLS13Suites[0], "TLS_") {
		t.Errorf("TLS 1.3 suites %v", r.TLS13Suites)
	}
	if len(r.Chain) != 2 || r.Chain[0].KeyType != "ECDSA P-256" || !r.Chain[1].IsCA ||
		!slices.Contains(r.Chain[0].IPAddresses, "127.0.0.1") || !slices.Contains(r.Chain[0].DNSNames, "localhost") {
		t.Errorf("chain %+v", r.Chain)
	}
	if !r.Pass || len(r.Errors) != 0 {
		t.Errorf("verdict fails: %+v errors %v", r.Findings, r.Errors)
	}
	for _, f := range r.Findings {
		if f.Severity != SeverityInfo {
			t.Errorf("unexpected finding %+v", f)
		}
	}
}

func TestScanPolicyServer(t *testing.T) {
	pk := newPKI(t)
	cfg := tlspolicy.Default().ServerConfig(pk.serverCert(), pk.ca.Pool(), nil)
	cfg.ClientAuth, cfg.GetConfigForClient = tls.NoClientCert, nil
	addr := tlsServe(t, cfg)
	r, err := Scan(context.Background(), addr, scanOpts())
	if err != nil {
		t.Fatal(err)
	}
	wantPolicyServerReport(t, r)
	if r.ClientCertRequested {
		t.Error("client certificate reported as requested")
	}
}

func TestScanClientCertServer(t *testing.T) {
	s := startPolicyServer(t)
	r, err := Scan(context.Background(), s.addr, scanOpts())
	if err != nil {
		t.Fatal(err)
	}
	wantPolicyServerReport(t, r)
	if !r.ClientCertRequested || !hasFinding(r, SeverityInfo, "client certificate") {
		t.Error("client certificate request not reported")
	}
	// The scan itself is visible in the server's refusal log, with what the
	// scanner offered.
	waitFor(t, "scan refusals", func() bool {
		k := s.kinds()
		return slices.Contains(k, tlspolicy.KindVersion) && slices.Contains(k, tlspolicy.KindCipher) && slices.Contains(k, tlspolicy.KindNoCertificate)
	})
	if got := s.echo.got(); len(got) != 0 {
		t.Fatalf("the scanner sent application data: %q", got)
	}
}

func rsaCert(t *testing.T) tls.Certificate {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "weak.example"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(10 * 24 * time.Hour),
		DNSNames: []string{"weak.example"}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func TestScanWeakServer(t *testing.T) {
	addr := tlsServe(t, &tls.Config{
		Certificates: []tls.Certificate{rsaCert(t)},
		MinVersion:   tls.VersionTLS10,
		MaxVersion:   tls.VersionTLS12,
		CipherSuites: []uint16{
			tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA,
			tls.TLS_RSA_WITH_AES_128_CBC_SHA,
			tls.TLS_RSA_WITH_AES_128_GCM_SHA256,
			tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
		},
	})
	r, err := Scan(context.Background(), addr, scanOpts())
	if err != nil {
		t.Fatal(err)
	}
	if got := acceptedVersions(r); !slices.Equal(got, []string{"TLS 1.0", "TLS 1.1", "TLS 1.2"}) {
		t.Errorf("accepted versions %v", got)
	}
	if got := acceptedSuites(r, "TLS 1.0"); !slices.Equal(got, []string{"TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA", "TLS_RSA_WITH_AES_128_CBC_SHA"}) {
		t.Errorf("TLS 1.0 suites %v", got)
	}
	if got := acceptedSuites(r, "TLS 1.2"); len(got) != 4 {
		t.Errorf("TLS 1.2 suites %v", got)
	}
	if r.Pass {
		t.Fatal("weak server passes")
	}
	for _, want := range []string{
		"accepts TLS 1.0", "accepts TLS 1.1",
		"accepts TLS_RSA_WITH_AES_128_CBC_SHA with TLS 1.0, TLS 1.1, TLS 1.2",
		"accepts TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA with TLS 1.0, TLS 1.1, TLS 1.2: CBC",
		"accepts TLS_RSA_WITH_AES_128_GCM_SHA256 with TLS 1.2: RSA key exchange",
	} {
		if !hasFinding(r, SeverityFail, want) {
			t.Errorf("no failure %q in %+v", want, r.Findings)
		}
	}
	if hasFinding(r, SeverityFail, "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256") {
		t.Error("an allowed suite is reported")
	}
	for _, want := range []string{"does not accept TLS 1.3", "expires on"} {
		if !hasFinding(r, SeverityWarn, want) {
			t.Errorf("no warning %q in %+v", want, r.Findings)
		}
	}
	if len(r.Chain) != 1 || r.Chain[0].KeyType != "RSA 2048" {
		t.Errorf("chain %+v", r.Chain)
	}
}

func TestScanTightPolicy(t *testing.T) {
	pk := newPKI(t)
	cfg := tlspolicy.Default().ServerConfig(pk.serverCert(), pk.ca.Pool(), nil)
	cfg.ClientAuth, cfg.GetConfigForClient = tls.NoClientCert, nil
	addr := tlsServe(t, cfg)
	strict, err := tlspolicy.ParseConfig([]byte(`{"min_version":"1.3"}`))
	if err != nil {
		t.Fatal(err)
	}
	opts := scanOpts()
	opts.Policy = &strict
	r, err := Scan(context.Background(), addr, opts)
	if err != nil {
		t.Fatal(err)
	}
	if r.Pass || !hasFinding(r, SeverityFail, "accepts TLS 1.2") || !hasFinding(r, SeverityFail, "only allowed from TLS 1.3") {
		t.Fatalf("a 1.2 server passes a 1.3-only policy: %+v", r.Findings)
	}
}

func TestScanNotTLS(t *testing.T) {
	l := listenTCP(t)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			_, _ = c.Write([]byte("HTTP/1.0 400 Bad Request\r\n\r\n"))
			c.Close()
		}
	}()
	t.Cleanup(func() { l.Close() })
	if _, err := Scan(context.Background(), l.Addr().String(), scanOpts()); !errors.Is(err, ErrNotTLS) {
		t.Fatalf("plain TCP server: %v, want ErrNotTLS", err)
	}
	// A closed port.
	addr := l.Addr().String()
	l.Close()
	if _, err := Scan(context.Background(), addr, scanOpts()); !errors.Is(err, ErrNotTLS) {
		t.Fatalf("closed port: %v, want ErrNotTLS", err)
	}
	if _, err := Scan(context.Background(), "no-port", scanOpts()); err == nil {
		t.Fatal("address without port accepted")
	}
}

func TestScanBounded(t *testing.T) {
	// A server that accepts and never answers: each probe times out, and
	// the whole scan stops at MaxDuration.
	l := listenTCP(t)
	var conns []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()
	t.Cleanup(func() {
		l.Close()
		<-done
		for _, c := range conns {
			c.Close()
		}
	})
	start := time.Now()
	_, err := Scan(context.Background(), l.Addr().String(), Options{Timeout: 100 * time.Millisecond, MaxDuration: 250 * time.Millisecond})
	if err == nil {
		t.Fatal("silent server scanned without error")
	}
	if el := time.Since(start); el > 2*time.Second {
		t.Fatalf("scan took %v despite MaxDuration 250ms", el)
	}
}
