package tlspolicy

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"time"
)

// ErrScanIncomplete is returned, with the partial report, when some probes
// could not run (connection failures, timeouts, the overall deadline).
var ErrScanIncomplete = errors.New("TLS scan incomplete")

// ErrNotTLS is returned when no handshake with any version got a reply.
var ErrNotTLS = errors.New("no TLS handshake succeeded")

// ScanOptions tune Scan. Zero values select the defaults.
type ScanOptions struct {
	Timeout     time.Duration // per handshake (default 5s)
	MaxDuration time.Duration // whole scan (default 3m)
	// ServerName is sent as SNI (default: the host of addr unless it is an
	// IP address). The scanner verifies no certificate: it only inspects.
	ServerName string
	NextProtos []string         // ALPN to offer (default none)
	Policy     *Policy          // the verdict's policy (default Default())
	Now        func() time.Time // clock for certificate expiry (default time.Now)
}

// Report is the result of a scan.
type Report struct {
	Address    string    `json:"address"`
	ServerName string    `json:"server_name,omitempty"`
	Time       time.Time `json:"time"`

	Versions []VersionResult `json:"versions"`
	Suites   []SuiteResult   `json:"suites"`
	Groups   []GroupResult   `json:"groups"`
	// TLS13Suites are the TLS 1.3 suites the server chose; Go's client
	// cannot offer them one at a time.
	TLS13Suites         []string   `json:"tls13_suites,omitempty"`
	ClientCertRequested bool       `json:"client_cert_requested"`
	Chain               []CertInfo `json:"chain"`

	Findings []Finding `json:"findings"`
	Pass     bool      `json:"pass"`
	Errors   []string  `json:"errors,omitempty"` // probes that could not run
}

// VersionResult is one protocol version probe.
type VersionResult struct {
	Version  string `json:"version"`
	ID       uint16 `json:"id"`
	Accepted bool   `json:"accepted"`
	Detail   string `json:"detail,omitempty"` // why it was refused
}

// SuiteResult is one cipher suite probe at one version.
type SuiteResult struct {
	Version  string `json:"version"`
	Suite    string `json:"suite"`
	ID       uint16 `json:"id"`
	Accepted bool   `json:"accepted"`
	Allowed  bool   `json:"allowed"` // by the policy
}

// GroupResult is one key exchange group probe at one version.
type GroupResult struct {
	Version  string `json:"version"`
	Group    string `json:"group"`
	ID       uint16 `json:"id"`
	Accepted bool   `json:"accepted"`
	// Undetermined is set when the probe could not tell: in TLS 1.2 a
	// server with an ECDSA key on another curve chose that curve instead.
	Undetermined bool `json:"undetermined,omitempty"`
}

// CertInfo describes one certificate of the presented chain.
type CertInfo struct {
	Subject     string    `json:"subject"`
	Issuer      string    `json:"issuer"`
	DNSNames    []string  `json:"dns_names,omitempty"`
	IPAddresses []string  `json:"ip_addresses,omitempty"`
	URIs        []string  `json:"uris,omitempty"`
	NotBefore   time.Time `json:"not_before"`
	NotAfter    time.Time `json:"not_after"`
	KeyType     string    `json:"key_type"`
	SigAlg      string    `json:"signature_algorithm"`
	IsCA        bool      `json:"is_ca"`
	SHA256      string    `json:"sha256"`
	SPKISHA256  string    `json:"spki_sha256"`
	// Fingerprint is SPKISHA256 as coffer prints a CA fingerprint
	// everywhere (pki.FormatFingerprint, docs/pki.md).
	Fingerprint string `json:"fingerprint"`
}

// Finding severities. Only SeverityFail makes a report fail.
const (
	SeverityFail = "fail"
	SeverityWarn = "warn"
	SeverityInfo = "info"
)

// Finding is one observation of the verdict.
type Finding struct {
	Severity string `json:"severity"`
	Message  string `json:"message"`
}

var scanVersions = []uint16{tls.VersionTLS10, tls.VersionTLS11, tls.VersionTLS12, tls.VersionTLS13}

// scanGroups13 and scanGroups12 are every group Go can offer at each version.
var (
	scanGroups13 = []tls.CurveID{tls.X25519MLKEM768, tls.SecP256r1MLKEM768, tls.SecP384r1MLKEM1024, tls.X25519, tls.CurveP256, tls.CurveP384, tls.CurveP521}
	scanGroups12 = []tls.CurveID{tls.X25519, tls.CurveP256, tls.CurveP384, tls.CurveP521}
)

// Scan probes the TLS server at addr (host:port), one handshake at a time:
// each version from TLS 1.0 to 1.3; at each accepted version below 1.3,
// every cipher suite Go knows (tls.CipherSuites and InsecureCipherSuites);
// at 1.3 and 1.2, every key exchange group. A probe counts as accepted when
// the server answered with a ServerHello choosing what was offered and sent
// its certificate, even if it then aborts for lack of a client certificate.
// It records the certificate chain and a verdict against opts.Policy. No
// application data is ever sent.
//
// It returns ErrNotTLS if no version was accepted, and the partial report
// with an error wrapping ErrScanIncomplete if some probes could not run.
func Scan(ctx context.Context, addr string, opts ScanOptions) (*Report, error) {
	if opts.Timeout <= 0 {
		opts.Timeout = 5 * time.Second
	}
	if opts.MaxDuration <= 0 {
		opts.MaxDuration = 3 * time.Minute
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	policy := Default()
	if opts.Policy != nil {
		policy = *opts.Policy
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("scan %s: %w", addr, err)
	}
	if opts.ServerName == "" && net.ParseIP(host) == nil {
		opts.ServerName = host
	}
	ctx, cancel := context.WithTimeout(ctx, opts.MaxDuration)
	defer cancel()

	s := &scanner{addr: addr, opts: opts}
	r := &Report{Address: addr, ServerName: opts.ServerName, Time: opts.Now().UTC()}
	var chain, chain12 []*x509.Certificate
	accepted := map[uint16]bool{}

	for _, v := range scanVersions {
		res := s.probe(ctx, v, suitesFor(v, nil), nil)
		if res.err != nil {
			r.Errors = append(r.Errors, fmt.Sprintf("%s: %v", versionName(v), res.err))
			continue
		}
		vr := VersionResult{Version: versionName(v), ID: v, Accepted: res.helloSeen && res.version == v}
		if !vr.Accepted {
			vr.Detail = res.refusal
		}
		r.Versions = append(r.Versions, vr)
		if !vr.Accepted {
			continue
		}
		accepted[v] = true
		r.ClientCertRequested = r.ClientCertRequested || res.certRequested
		if len(res.certs) > 0 {
			chain = res.certs // the highest version's chain wins
			if v == tls.VersionTLS12 {
				chain12 = res.certs
			}
		}
		if v == tls.VersionTLS13 {
			r.TLS13Suites = append(r.TLS13Suites, tls.CipherSuiteName(res.suite))
		}
	}
	if len(accepted) == 0 {
		var why []string
		for _, v := range r.Versions {
			why = append(why, v.Version+": "+v.Detail)
		}
		why = append(why, r.Errors...)
		return r, fmt.Errorf("scan %s: %w: %s", addr, ErrNotTLS, strings.Join(why, "; "))
	}

	for _, v := range scanVersions[:3] {
		if !accepted[v] {
			continue
		}
		for _, cs := range suitesFor(v, nil) {
			res := s.probe(ctx, v, []uint16{cs}, nil)
			if res.err != nil {
				r.Errors = append(r.Errors, fmt.Sprintf("%s %s: %v", versionName(v), tls.CipherSuiteName(cs), res.err))
				continue
			}
			r.Suites = append(r.Suites, SuiteResult{
				Version: versionName(v), Suite: tls.CipherSuiteName(cs), ID: cs,
				Accepted: res.helloSeen && res.suite == cs,
				Allowed:  v >= policy.MinVersion && slices.Contains(policy.CipherSuites, cs),
			})
		}
	}

	for _, v := range []uint16{tls.VersionTLS13, tls.VersionTLS12} {
		if !accepted[v] {
			continue
		}
		groups, suites := scanGroups13, []uint16(nil)
		if v == tls.VersionTLS12 {
			groups, suites = scanGroups12, suitesFor(v, func(s *tls.CipherSuite) bool { return strings.HasPrefix(s.Name, "TLS_ECDHE_") })
		}
		for _, g := range groups {
			res := s.probe(ctx, v, suites, []tls.CurveID{g})
			if res.err != nil {
				r.Errors = append(r.Errors, fmt.Sprintf("%s %s: %v", versionName(v), g, res.err))
				continue
			}
			ok := res.helloSeen && res.version == v && (res.curve == g ||
				// TLS 1.2: the server key exchange, which names the group,
				// comes after the certificate; Go's client checked it is the
				// one offered when it reaches the certificate request.
				v == tls.VersionTLS12 && res.certRequested)
			undetermined := false
			if c, isEC := certCurve(chain12); !ok && v == tls.VersionTLS12 && isEC && c != g {
				// In TLS 1.2 the supported groups also bound the curve of
				// the server's ECDSA key (RFC 8422), so offering g alone
				// cannot succeed; offer the key's curve too and see
				// whether the server picks g.
				res = s.probe(ctx, v, suites, []tls.CurveID{g, c})
				ok = res.err == nil && res.helloSeen && res.version == v && res.curve == g
				// The server chose its key's curve: g may or may not work.
				undetermined = !ok && res.err == nil && res.helloSeen && (res.curve == c || res.curve == 0)
			}
			r.Groups = append(r.Groups, GroupResult{Version: versionName(v), Group: g.String(), ID: uint16(g), Accepted: ok, Undetermined: undetermined})
		}
	}

	for _, c := range chain {
		r.Chain = append(r.Chain, certInfo(c))
	}
	r.Findings = policy.Evaluate(r, opts.Now())
	r.Pass = !slices.ContainsFunc(r.Findings, func(f Finding) bool { return f.Severity == SeverityFail })
	if len(r.Errors) > 0 {
		return r, fmt.Errorf("scan %s: %w: %d probes failed, first: %s", addr, ErrScanIncomplete, len(r.Errors), r.Errors[0])
	}
	return r, nil
}

// suitesFor returns the suites Go knows for version v (below 1.3) that keep
// passes (all when keep is nil).
func suitesFor(v uint16, keep func(*tls.CipherSuite) bool) []uint16 {
	if v == tls.VersionTLS13 {
		return nil
	}
	var ids []uint16
	for _, s := range allSuites() {
		if slices.Contains(s.SupportedVersions, v) && (keep == nil || keep(s)) {
			ids = append(ids, s.ID)
		}
	}
	return ids
}

type scanner struct {
	addr string
	opts ScanOptions
}

// probeResult is what one handshake revealed.
type probeResult struct {
	helloSeen     bool // the server chose parameters and sent its certificate
	certRequested bool
	version       uint16
	suite         uint16
	curve         tls.CurveID
	certs         []*x509.Certificate
	refusal       string // the handshake error, when the server refused
	err           error  // the probe could not run: no answer at all
}

// probe runs one handshake offering exactly version v, suites (all of v's
// when nil) and groups (all Go has when nil), and sends nothing after it.
func (s *scanner) probe(ctx context.Context, v uint16, suites []uint16, groups []tls.CurveID) probeResult {
	var res probeResult
	if err := ctx.Err(); err != nil {
		res.err = err
		return res
	}
	d := net.Dialer{Timeout: s.opts.Timeout}
	raw, err := d.DialContext(ctx, "tcp", s.addr)
	if err != nil {
		res.err = err
		return res
	}
	defer raw.Close()
	_ = raw.SetDeadline(time.Now().Add(s.opts.Timeout))
	cfg := probeConfig(v, suites, groups, s.opts.ServerName, s.opts.NextProtos, &res)
	hctx, cancel := context.WithTimeout(ctx, s.opts.Timeout)
	defer cancel()
	conn := tls.Client(raw, cfg)
	err = conn.HandshakeContext(hctx)
	if err == nil {
		cs := conn.ConnectionState()
		res.helloSeen, res.version, res.suite, res.curve = true, cs.Version, cs.CipherSuite, cs.CurveID
		res.certs = cs.PeerCertificates
		return res
	}
	var ne net.Error
	if !res.helloSeen && (errors.As(err, &ne) && ne.Timeout() || errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil) {
		res.err = fmt.Errorf("no answer: %w", err)
		return res
	}
	res.refusal = err.Error()
	return res
}

// probeConfig is the scanner's handshake config. It skips certificate
// verification because the scanner inspects arbitrary servers, and it
// never leaves this file: it is built per probe, used for one handshake
// after which nothing is sent, and dropped.
func probeConfig(v uint16, suites []uint16, groups []tls.CurveID, serverName string, nextProtos []string, res *probeResult) *tls.Config {
	if groups == nil {
		groups = scanGroups13
		if v < tls.VersionTLS13 {
			groups = scanGroups12
		}
	}
	return &tls.Config{
		MinVersion:       v,
		MaxVersion:       v,
		CipherSuites:     suites,
		CurvePreferences: groups,
		ServerName:       serverName,
		NextProtos:       nextProtos,
		// #nosec G402 -- scanner inspects, sends no data: it must see servers whose certificates it cannot verify, and it reports the chain instead.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			res.helloSeen, res.version, res.suite, res.curve = true, cs.Version, cs.CipherSuite, cs.CurveID
			res.certs = cs.PeerCertificates
			return nil
		},
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			res.certRequested = true
			return &tls.Certificate{}, nil
		},
	}
}

func certInfo(c *x509.Certificate) CertInfo {
	ci := CertInfo{
		Subject: c.Subject.String(), Issuer: c.Issuer.String(),
		DNSNames: c.DNSNames, NotBefore: c.NotBefore.UTC(), NotAfter: c.NotAfter.UTC(),
		KeyType: keyType(c), SigAlg: c.SignatureAlgorithm.String(), IsCA: c.IsCA,
	}
	for _, ip := range c.IPAddresses {
		ci.IPAddresses = append(ci.IPAddresses, ip.String())
	}
	for _, u := range c.URIs {
		ci.URIs = append(ci.URIs, u.String())
	}
	h := sha256.Sum256(c.Raw)
	ci.SHA256 = hex.EncodeToString(h[:])
	h = sha256.Sum256(c.RawSubjectPublicKeyInfo)
	ci.SPKISHA256 = hex.EncodeToString(h[:])
	ci.Fingerprint = fingerprint(h)
	return ci
}

// certCurve returns the group matching the curve of an ECDSA leaf.
func certCurve(chain []*x509.Certificate) (tls.CurveID, bool) {
	if len(chain) == 0 {
		return 0, false
	}
	k, ok := chain[0].PublicKey.(*ecdsa.PublicKey)
	if !ok {
		return 0, false
	}
	switch k.Curve.Params().Name {
	case "P-256":
		return tls.CurveP256, true
	case "P-384":
		return tls.CurveP384, true
	case "P-521":
		return tls.CurveP521, true
	}
	return 0, false
}

func keyType(c *x509.Certificate) string {
	switch k := c.PublicKey.(type) {
	case *ecdsa.PublicKey:
		return "ECDSA " + k.Curve.Params().Name
	case *rsa.PublicKey:
		return fmt.Sprintf("RSA %d", k.N.BitLen())
	case ed25519.PublicKey:
		return "Ed25519"
	}
	return c.PublicKeyAlgorithm.String()
}

// Evaluate returns the findings of report against p at now: failures for
// anything weaker than the policy (old versions, suites outside the policy,
// no allowed version, an expired or weak certificate), warnings for what
// the policy prefers (TLS 1.3, a post-quantum group, expiry within 30 days).
func (p Policy) Evaluate(r *Report, now time.Time) []Finding {
	var f []Finding
	add := func(sev, format string, args ...any) {
		f = append(f, Finding{Severity: sev, Message: fmt.Sprintf(format, args...)})
	}
	acceptedVersion := map[uint16]bool{}
	for _, v := range r.Versions {
		if !v.Accepted {
			continue
		}
		acceptedVersion[v.ID] = true
		if v.ID < p.MinVersion {
			add(SeverityFail, "accepts %s", v.Version)
		}
	}
	allowed := false
	for v := range acceptedVersion {
		allowed = allowed || v >= p.MinVersion
	}
	if !allowed {
		add(SeverityFail, "accepts no TLS version the policy allows (minimum %s)", versionName(p.MinVersion))
	}
	// One finding per weak suite, naming the versions.
	var weak []string
	weakAt := map[string][]string{}
	for _, s := range r.Suites {
		if s.Accepted && !s.Allowed {
			if _, seen := weakAt[s.Suite]; !seen {
				weak = append(weak, s.Suite)
			}
			weakAt[s.Suite] = append(weakAt[s.Suite], s.Version)
		}
	}
	for _, s := range weak {
		id, _ := suiteByName(s)
		reason := suiteWeakness(id)
		if slices.Contains(p.CipherSuites, id) {
			reason = "only allowed from " + versionName(p.MinVersion)
		}
		add(SeverityFail, "accepts %s with %s: %s", s, strings.Join(weakAt[s], ", "), reason)
	}
	if allowed && !acceptedVersion[tls.VersionTLS13] {
		add(SeverityWarn, "does not accept TLS 1.3")
	}
	if acceptedVersion[tls.VersionTLS13] {
		pq := false
		for _, g := range r.Groups {
			pq = pq || g.Accepted && slices.Contains(hybridCurves, tls.CurveID(g.ID))
		}
		if !pq {
			add(SeverityWarn, "does not accept a hybrid post-quantum key exchange (X25519MLKEM768)")
		}
	}
	for _, g := range r.Groups {
		if g.Accepted && !slices.Contains(p.Curves, tls.CurveID(g.ID)) {
			add(SeverityInfo, "accepts key exchange group %s with %s, outside the policy's list", g.Group, g.Version)
		}
	}
	if r.ClientCertRequested {
		add(SeverityInfo, "requests a client certificate")
	}
	if len(r.Chain) > 0 {
		leaf := r.Chain[0]
		switch {
		case now.After(leaf.NotAfter):
			add(SeverityFail, "certificate %q expired on %s", leaf.Subject, leaf.NotAfter.Format(time.DateOnly))
		case now.Before(leaf.NotBefore):
			add(SeverityFail, "certificate %q is not valid before %s", leaf.Subject, leaf.NotBefore.Format(time.RFC3339))
		case leaf.NotAfter.Sub(now) < 30*24*time.Hour:
			add(SeverityWarn, "certificate %q expires on %s", leaf.Subject, leaf.NotAfter.Format(time.DateOnly))
		}
		for i, c := range r.Chain {
			if strings.HasPrefix(c.KeyType, "RSA ") {
				var bits int
				if _, err := fmt.Sscanf(c.KeyType, "RSA %d", &bits); err == nil && bits < 2048 {
					add(SeverityFail, "certificate %q has a %d-bit RSA key", c.Subject, bits)
				}
			}
			selfSigned := c.Subject == c.Issuer && i == len(r.Chain)-1
			if !selfSigned && (strings.Contains(c.SigAlg, "SHA1") || strings.Contains(c.SigAlg, "MD5") || strings.Contains(c.SigAlg, "MD2")) {
				add(SeverityFail, "certificate %q is signed with %s", c.Subject, c.SigAlg)
			}
		}
	}
	return f
}

// fingerprint prints a SHA-256 as pki.FormatFingerprint does (this package
// imports only the standard library): upper-case hex in colon-separated
// pairs. cmd/coffer's TestOneCAFingerprint holds the two together.
func fingerprint(h [32]byte) string {
	var b strings.Builder
	for i, c := range h {
		if i > 0 {
			b.WriteByte(':')
		}
		fmt.Fprintf(&b, "%02X", c)
	}
	return b.String()
}
