// Package tlsscan audits any TLS port against coffer's TLS policy: one
// handshake per version, suite and group, the chain, and a verdict.
//
// docs/pki.md §6 describes what it probes and what the verdict checks.
package tlsscan

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/coffer-backup/coffer/internal/tlspolicy"
)

// ErrScanIncomplete is returned, with the partial report, when some probes
// could not run (connection failures, timeouts, the overall deadline).
var ErrScanIncomplete = errors.New("TLS scan incomplete")

// ErrNotTLS is returned when no handshake with any version got a reply.
var ErrNotTLS = errors.New("no TLS handshake succeeded")

// Options tune Scan. Zero values select the defaults.
type Options struct {
	Timeout     time.Duration // per handshake (default 5s)
	MaxDuration time.Duration // whole scan (default 3m)
	// ServerName is sent as SNI (default: the host of addr unless it is an
	// IP address). The scanner verifies no certificate: it only inspects.
	ServerName string
	NextProtos []string          // ALPN to offer (default none)
	Policy     *tlspolicy.Policy // the verdict's policy (default tlspolicy.Default())
	Now        func() time.Time  // clock for certificate expiry (default time.Now)
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
func Scan(ctx context.Context, addr string, opts Options) (*Report, error) {
	opts, policy, err := opts.withDefaults(addr)
	if err != nil {
		return nil, fmt.Errorf("scan %s: %w", addr, err)
	}
	ctx, cancel := context.WithTimeout(ctx, opts.MaxDuration)
	defer cancel()

	s := &scanner{
		addr: addr, opts: opts, policy: policy, accepted: map[uint16]bool{},
		r: &Report{Address: addr, ServerName: opts.ServerName, Time: opts.Now().UTC()},
	}
	s.probeVersions(ctx)
	if len(s.accepted) == 0 {
		return s.r, s.notTLS()
	}
	s.probeSuites(ctx)
	s.probeGroups(ctx)

	r := s.r
	for _, c := range s.chain {
		r.Chain = append(r.Chain, certInfo(c))
	}
	r.Findings = Evaluate(policy, r, opts.Now())
	r.Pass = !slices.ContainsFunc(r.Findings, func(f Finding) bool { return f.Severity == SeverityFail })
	if len(r.Errors) > 0 {
		return r, fmt.Errorf("scan %s: %w: %d probes failed, first: %s", addr, ErrScanIncomplete, len(r.Errors), r.Errors[0])
	}
	return r, nil
}

// withDefaults fills in the zero fields of o and returns the policy of the
// verdict. The server name defaults to addr's host unless it is an IP.
func (o Options) withDefaults(addr string) (Options, tlspolicy.Policy, error) {
	if o.Timeout <= 0 {
		o.Timeout = 5 * time.Second
	}
	if o.MaxDuration <= 0 {
		o.MaxDuration = 3 * time.Minute
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	policy := tlspolicy.Default()
	if o.Policy != nil {
		policy = *o.Policy
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return o, policy, err
	}
	if o.ServerName == "" && net.ParseIP(host) == nil {
		o.ServerName = host
	}
	return o, policy, nil
}

// scanner is one scan in progress: the report so far and what the version
// probes found, which the later probes build on.
type scanner struct {
	addr   string
	opts   Options
	policy tlspolicy.Policy
	r      *Report

	accepted map[uint16]bool
	chain    []*x509.Certificate // the highest accepted version's chain
	chain12  []*x509.Certificate // TLS 1.2's chain, whose key bounds its groups
}

// failed records a probe that could not run.
func (s *scanner) failed(what string, err error) {
	s.r.Errors = append(s.r.Errors, fmt.Sprintf("%s: %v", what, err))
}

// probeVersions offers each version alone, with all its suites and groups.
func (s *scanner) probeVersions(ctx context.Context) {
	for _, v := range scanVersions {
		res := s.probe(ctx, v, suitesFor(v, nil), nil)
		if res.err != nil {
			s.failed(versionName(v), res.err)
			continue
		}
		vr := VersionResult{Version: versionName(v), ID: v, Accepted: res.helloSeen && res.version == v}
		if !vr.Accepted {
			vr.Detail = res.refusal
		}
		s.r.Versions = append(s.r.Versions, vr)
		if vr.Accepted {
			s.acceptVersion(v, res)
		}
	}
}

// acceptVersion records what an accepted version probe revealed.
func (s *scanner) acceptVersion(v uint16, res probeResult) {
	s.accepted[v] = true
	s.r.ClientCertRequested = s.r.ClientCertRequested || res.certRequested
	if len(res.certs) > 0 {
		s.chain = res.certs
		if v == tls.VersionTLS12 {
			s.chain12 = res.certs
		}
	}
	if v == tls.VersionTLS13 {
		s.r.TLS13Suites = append(s.r.TLS13Suites, tls.CipherSuiteName(res.suite))
	}
}

// notTLS is the error of a scan in which no version was accepted, with
// each version's refusal and each probe that could not run.
func (s *scanner) notTLS() error {
	var why []string
	for _, v := range s.r.Versions {
		why = append(why, v.Version+": "+v.Detail)
	}
	why = append(why, s.r.Errors...)
	return fmt.Errorf("scan %s: %w: %s", s.addr, ErrNotTLS, strings.Join(why, "; "))
}

// probeSuites offers each suite alone at each accepted version below 1.3.
func (s *scanner) probeSuites(ctx context.Context) {
	for _, v := range scanVersions[:3] {
		if !s.accepted[v] {
			continue
		}
		for _, cs := range suitesFor(v, nil) {
			res := s.probe(ctx, v, []uint16{cs}, nil)
			if res.err != nil {
				s.failed(versionName(v)+" "+tls.CipherSuiteName(cs), res.err)
				continue
			}
			s.r.Suites = append(s.r.Suites, SuiteResult{
				Version: versionName(v), Suite: tls.CipherSuiteName(cs), ID: cs,
				Accepted: res.helloSeen && res.suite == cs,
				Allowed:  v >= s.policy.MinVersion && slices.Contains(s.policy.CipherSuites, cs),
			})
		}
	}
}

// probeGroups offers each group alone at TLS 1.3 and 1.2 (with the ECDHE
// suites), when accepted.
func (s *scanner) probeGroups(ctx context.Context) {
	for _, v := range []uint16{tls.VersionTLS13, tls.VersionTLS12} {
		if !s.accepted[v] {
			continue
		}
		groups, suites := scanGroups13, []uint16(nil)
		if v == tls.VersionTLS12 {
			groups, suites = scanGroups12, suitesFor(v, func(s *tls.CipherSuite) bool { return strings.HasPrefix(s.Name, "TLS_ECDHE_") })
		}
		for _, g := range groups {
			gr, err := s.probeGroup(ctx, v, suites, g)
			if err != nil {
				s.failed(versionName(v)+" "+g.String(), err)
				continue
			}
			s.r.Groups = append(s.r.Groups, gr)
		}
	}
}

// probeGroup offers group g alone at version v.
func (s *scanner) probeGroup(ctx context.Context, v uint16, suites []uint16, g tls.CurveID) (GroupResult, error) {
	res := s.probe(ctx, v, suites, []tls.CurveID{g})
	if res.err != nil {
		return GroupResult{}, res.err
	}
	gr := GroupResult{Version: versionName(v), Group: g.String(), ID: uint16(g)}
	gr.Accepted = res.helloSeen && res.version == v && (res.curve == g ||
		// TLS 1.2: the server key exchange, which names the group, comes
		// after the certificate; Go's client checked it is the one offered
		// when it reaches the certificate request.
		v == tls.VersionTLS12 && res.certRequested)
	if c, isEC := certCurve(s.chain12); !gr.Accepted && v == tls.VersionTLS12 && isEC && c != g {
		// In TLS 1.2 the supported groups also bound the curve of the
		// server's ECDSA key (RFC 8422), so offering g alone cannot
		// succeed; offer the key's curve too and see whether the server
		// picks g.
		res = s.probe(ctx, v, suites, []tls.CurveID{g, c})
		gr.Accepted = res.err == nil && res.helloSeen && res.version == v && res.curve == g
		// The server chose its key's curve: g may or may not work.
		gr.Undetermined = !gr.Accepted && res.err == nil && res.helloSeen && (res.curve == c || res.curve == 0)
	}
	return gr, nil
}

// suitesFor returns the suites Go knows for version v (below 1.3) that keep
// passes (all when keep is nil).
func suitesFor(v uint16, keep func(*tls.CipherSuite) bool) []uint16 {
	if v == tls.VersionTLS13 {
		return nil
	}
	var ids []uint16
	for _, s := range append(tls.CipherSuites(), tls.InsecureCipherSuites()...) {
		if slices.Contains(s.SupportedVersions, v) && (keep == nil || keep(s)) {
			ids = append(ids, s.ID)
		}
	}
	return ids
}

func versionName(v uint16) string { return tlspolicy.VersionName(v) }
