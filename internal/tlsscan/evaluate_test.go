package tlsscan

import (
	"crypto/tls"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coffer-backup/coffer/internal/tlspolicy"
)

var evalNow = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

func version(v uint16, ok bool) VersionResult {
	return VersionResult{Version: tlspolicy.VersionName(v), ID: v, Accepted: ok}
}

func group(v uint16, g tls.CurveID) GroupResult {
	return GroupResult{Version: tlspolicy.VersionName(v), Group: g.String(), ID: uint16(g), Accepted: true}
}

func cert(subject, issuer, key, sig string, notBefore, notAfter time.Time) CertInfo {
	return CertInfo{Subject: subject, Issuer: issuer, KeyType: key, SigAlg: sig, NotBefore: notBefore, NotAfter: notAfter}
}

// goodReport is what a server on coffer's policy shows.
func goodReport() *Report {
	return &Report{
		Versions: []VersionResult{version(tls.VersionTLS12, true), version(tls.VersionTLS13, true)},
		Groups:   []GroupResult{group(tls.VersionTLS13, tls.X25519MLKEM768), group(tls.VersionTLS13, tls.X25519)},
		Chain: []CertInfo{
			cert("CN=server", "CN=ca", "ECDSA P-256", "ECDSA-SHA256", evalNow.AddDate(0, -1, 0), evalNow.AddDate(1, 0, 0)),
			cert("CN=ca", "CN=ca", "ECDSA P-256", "ECDSA-SHA256", evalNow.AddDate(-1, 0, 0), evalNow.AddDate(9, 0, 0)),
		},
	}
}

func messages(f []Finding) []string {
	var out []string
	for _, x := range f {
		out = append(out, x.Severity+": "+x.Message)
	}
	return out
}

// TestEvaluate checks each rule of the verdict on a report built by hand,
// so every branch is reached without a server that exhibits it.
func TestEvaluate(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		change func(r *Report)
		want   []string // exactly these findings, in order
	}{
		{"policy server", func(*Report) {}, nil},
		{"client certificate", func(r *Report) { r.ClientCertRequested = true }, []string{"info: requests a client certificate"}},
		{"old versions only", func(r *Report) {
			r.Versions = []VersionResult{version(tls.VersionTLS10, true), version(tls.VersionTLS11, true), version(tls.VersionTLS12, false)}
		}, []string{"fail: accepts TLS 1.0", "fail: accepts TLS 1.1", "fail: accepts no TLS version the policy allows (minimum TLS 1.2)"}},
		{"no TLS 1.3", func(r *Report) {
			r.Versions = r.Versions[:1]
			r.Groups = []GroupResult{group(tls.VersionTLS12, tls.X25519)}
		}, []string{"warn: does not accept TLS 1.3"}},
		{"no hybrid group", func(r *Report) { r.Groups = r.Groups[1:] },
			[]string{"warn: does not accept a hybrid post-quantum key exchange (X25519MLKEM768)"}},
		{"group outside the list", func(r *Report) { r.Groups = append(r.Groups, group(tls.VersionTLS13, tls.CurveP521)) },
			[]string{"info: accepts key exchange group CurveP521 with TLS 1.3, outside the policy's list"}},
		{"weak suite at two versions, named once", func(r *Report) {
			cbc := tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA
			r.Suites = []SuiteResult{
				{Version: "TLS 1.2", Suite: tls.CipherSuiteName(cbc), ID: cbc, Accepted: true},
				{Version: "TLS 1.3", Suite: tls.CipherSuiteName(cbc), ID: cbc, Accepted: true},
				{Version: "TLS 1.2", Suite: "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", ID: tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, Accepted: true, Allowed: true},
				{Version: "TLS 1.2", Suite: "TLS_RSA_WITH_AES_128_GCM_SHA256", ID: tls.TLS_RSA_WITH_AES_128_GCM_SHA256},
			}
		}, []string{"fail: accepts TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA with TLS 1.2, TLS 1.3: CBC mode (MAC-then-encrypt, padding oracles)"}},
		{"expired", func(r *Report) { r.Chain[0].NotAfter = evalNow.AddDate(0, 0, -1) },
			[]string{`fail: certificate "CN=server" expired on 2026-05-31`}},
		{"not yet valid", func(r *Report) { r.Chain[0].NotBefore = evalNow.Add(time.Hour) },
			[]string{`fail: certificate "CN=server" is not valid before 2026-06-01T13:00:00Z`}},
		{"expires soon", func(r *Report) { r.Chain[0].NotAfter = evalNow.AddDate(0, 0, 29) },
			[]string{`warn: certificate "CN=server" expires on 2026-06-30`}},
		{"small RSA key and SHA-1", func(r *Report) { r.Chain[0].KeyType, r.Chain[0].SigAlg = "RSA 1024", "SHA1-RSA" },
			[]string{`fail: certificate "CN=server" has a 1024-bit RSA key`, `fail: certificate "CN=server" is signed with SHA1-RSA`}},
		{"SHA-1 on a self-signed root is not checked", func(r *Report) { r.Chain[1].SigAlg = "SHA1-RSA" }, nil},
		{"MD5 on a leaf without its root", func(r *Report) { r.Chain[0].SigAlg, r.Chain = "MD5-RSA", r.Chain[:1] },
			[]string{`fail: certificate "CN=server" is signed with MD5-RSA`}},
		{"no chain", func(r *Report) { r.Chain = nil }, nil},
	}
	for _, c := range cases {
		r := goodReport()
		c.change(r)
		got := messages(Evaluate(tlspolicy.Default(), r, evalNow))
		if !slices.Equal(got, c.want) {
			t.Errorf("%s:\n got  %q\n want %q", c.name, got, c.want)
		}
	}
}

// TestEvaluateTightPolicy: a suite the policy lists is still refused below
// the policy's minimum version, and 1.2 itself fails.
func TestEvaluateTightPolicy(t *testing.T) {
	t.Parallel()
	strict, err := tlspolicy.ParseConfig([]byte(`{"min_version":"1.3"}`))
	if err != nil {
		t.Fatal(err)
	}
	r := goodReport()
	gcm := tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
	r.Suites = []SuiteResult{{Version: "TLS 1.2", Suite: tls.CipherSuiteName(gcm), ID: gcm, Accepted: true}}
	got := strings.Join(messages(Evaluate(strict, r, evalNow)), "\n")
	want := "fail: accepts TLS 1.2\nfail: accepts TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256 with TLS 1.2: only allowed from TLS 1.3"
	if got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
}
