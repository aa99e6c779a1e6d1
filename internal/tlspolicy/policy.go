// Package tlspolicy is coffer's TLS policy: the server and client configs,
// and the refused-handshake listener, log and reports.
//
// It uses only crypto/tls and crypto/x509. docs/pki.md describes the policy.
package tlspolicy

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
)

// ErrLooserThanPolicy is returned for a configuration that would weaken the
// TLS policy below Default.
var ErrLooserThanPolicy = errors.New("TLS configuration is looser than coffer's policy")

// ErrInvalidConfig is returned for a TLS configuration section that does not
// parse or names unknown settings.
var ErrInvalidConfig = errors.New("invalid TLS configuration")

// ErrPeerRejected wraps the error of the server's verify hook, so refused
// handshakes are told apart from other certificate failures.
var ErrPeerRejected = errors.New("peer rejected by the server's verify hook")

// EnrollmentProto is the ALPN protocol of enrollment connections: the only
// connections a server accepts without a client certificate. A client that
// offers exactly this protocol is served without client authentication and
// may reach only the enrollment endpoint.
const EnrollmentProto = "coffer-enrol/1" // the ALPN name on the wire; kept as first deployed

// Policy is a TLS policy: the minimum version, the TLS 1.2 cipher suites and
// the key exchange groups. TLS 1.3 suites are not configurable in Go; all of
// them are AEADs.
type Policy struct {
	MinVersion   uint16
	CipherSuites []uint16
	Curves       []tls.CurveID
}

// defaultSuites are the only TLS 1.2 suites the policy allows: ECDHE with
// AES-GCM or ChaCha20-Poly1305.
var defaultSuites = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
}

// defaultCurves keep Go's hybrid post-quantum groups on (TLS 1.3 only) next
// to the classical ones TLS 1.2 needs; P-521 is left out, as in no common
// client's first choice.
var defaultCurves = []tls.CurveID{
	tls.X25519MLKEM768,
	tls.SecP256r1MLKEM768,
	tls.SecP384r1MLKEM1024,
	tls.X25519,
	tls.CurveP256,
	tls.CurveP384,
}

// hybridCurves are the post-quantum hybrids, usable only with TLS 1.3.
var hybridCurves = []tls.CurveID{tls.X25519MLKEM768, tls.SecP256r1MLKEM768, tls.SecP384r1MLKEM1024}

// IsHybrid reports whether g is a post-quantum hybrid group (TLS 1.3 only).
func IsHybrid(g tls.CurveID) bool { return slices.Contains(hybridCurves, g) }

// Default returns coffer's policy: TLS 1.2 minimum (1.3 preferred, as Go
// does), ECDHE with AEAD suites only in 1.2, and Go's default groups
// including X25519MLKEM768.
func Default() Policy {
	return Policy{
		MinVersion:   tls.VersionTLS12,
		CipherSuites: slices.Clone(defaultSuites),
		Curves:       slices.Clone(defaultCurves),
	}
}

// Validate returns an error wrapping ErrLooserThanPolicy unless p is at
// least as strict as Default: version 1.2 or 1.3, suites and groups a
// subset of the default ones, and enough left to make a handshake.
func (p Policy) Validate() error {
	if p.MinVersion != tls.VersionTLS12 && p.MinVersion != tls.VersionTLS13 {
		return fmt.Errorf("%w: minimum version %s (allowed: 1.2, 1.3)", ErrLooserThanPolicy, VersionName(p.MinVersion))
	}
	for _, s := range p.CipherSuites {
		if !slices.Contains(defaultSuites, s) {
			return fmt.Errorf("%w: cipher suite %s: %s", ErrLooserThanPolicy, tls.CipherSuiteName(s), SuiteWeakness(s))
		}
	}
	if p.MinVersion == tls.VersionTLS12 && len(p.CipherSuites) == 0 {
		return fmt.Errorf("%w: TLS 1.2 allowed but no cipher suite", ErrInvalidConfig)
	}
	classical := false
	for _, c := range p.Curves {
		if !slices.Contains(defaultCurves, c) {
			return fmt.Errorf("%w: key exchange group %s is not in the policy", ErrLooserThanPolicy, c)
		}
		classical = classical || !slices.Contains(hybridCurves, c)
	}
	if len(p.Curves) == 0 {
		return fmt.Errorf("%w: no key exchange group", ErrInvalidConfig)
	}
	if p.MinVersion == tls.VersionTLS12 && !classical {
		return fmt.Errorf("%w: TLS 1.2 allowed but only post-quantum hybrid groups, which need TLS 1.3", ErrInvalidConfig)
	}
	return nil
}

// SuiteWeakness says why a suite is outside the policy.
func SuiteWeakness(id uint16) string {
	name := tls.CipherSuiteName(id)
	switch {
	case strings.HasPrefix(name, "0x"):
		return "unknown cipher suite"
	case isTLS13Suite(id):
		return "TLS 1.3 suites are not configurable (all are allowed)"
	case strings.Contains(name, "RC4"):
		return "RC4 is broken"
	case strings.Contains(name, "3DES"):
		return "3DES is a 64-bit block cipher (Sweet32)"
	case strings.HasPrefix(name, "TLS_RSA_"):
		return "RSA key exchange has no forward secrecy"
	case strings.Contains(name, "_CBC_"):
		return "CBC mode (MAC-then-encrypt, padding oracles)"
	}
	return "not in the policy"
}

func isTLS13Suite(id uint16) bool {
	return id == tls.TLS_AES_128_GCM_SHA256 || id == tls.TLS_AES_256_GCM_SHA384 || id == tls.TLS_CHACHA20_POLY1305_SHA256
}

// Config is the "tls" section of a configuration file. Every field is
// optional; an absent field keeps the default.
type Config struct {
	MinVersion   string   `json:"min_version,omitempty"`   // "1.2" or "1.3"
	CipherSuites []string `json:"cipher_suites,omitempty"` // IANA names, e.g. TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
	Curves       []string `json:"curves,omitempty"`        // X25519MLKEM768, SecP256r1MLKEM768, SecP384r1MLKEM1024, X25519, P-256, P-384
}

// maxConfig bounds the size of a TLS configuration section.
const maxConfig = 64 << 10

// ParseConfig parses a JSON "tls" section strictly (unknown fields,
// trailing data and duplicate list entries are errors) into a Policy. An
// empty section is Default. The section may tighten the policy; anything
// looser than Default (TLS 1.0/1.1, CBC, RSA key exchange, 3DES, RC4, a
// group outside the default set) is refused with an error wrapping
// ErrLooserThanPolicy that names the setting; unknown names wrap
// ErrInvalidConfig.
func ParseConfig(data []byte) (Policy, error) {
	if len(data) > maxConfig {
		return Policy{}, fmt.Errorf("%w: section larger than %d bytes", ErrInvalidConfig, maxConfig)
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return Default(), nil
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var c Config
	if err := dec.Decode(&c); err != nil {
		return Policy{}, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return Policy{}, fmt.Errorf("%w: data after the JSON object", ErrInvalidConfig)
	}
	if bytes.TrimSpace(data)[0] != '{' {
		return Policy{}, fmt.Errorf("%w: want a JSON object", ErrInvalidConfig)
	}
	return c.Policy()
}

// Policy turns the section into a validated Policy.
func (c Config) Policy() (Policy, error) {
	p := Default()
	switch c.MinVersion {
	case "", "1.2":
	case "1.3":
		p.MinVersion = tls.VersionTLS13
	case "1.0", "1.1", "ssl3", "SSLv3":
		return Policy{}, fmt.Errorf("%w: min_version %q: the minimum is 1.2", ErrLooserThanPolicy, c.MinVersion)
	default:
		return Policy{}, fmt.Errorf("%w: min_version %q: want \"1.2\" or \"1.3\"", ErrInvalidConfig, c.MinVersion)
	}
	if c.CipherSuites != nil {
		if p.MinVersion == tls.VersionTLS13 {
			return Policy{}, fmt.Errorf("%w: cipher_suites apply to TLS 1.2 only, but min_version is 1.3", ErrInvalidConfig)
		}
		p.CipherSuites = nil
		for _, name := range c.CipherSuites {
			id, ok := suiteByName(name)
			if !ok {
				return Policy{}, fmt.Errorf("%w: unknown cipher suite %q", ErrInvalidConfig, name)
			}
			if !slices.Contains(defaultSuites, id) {
				return Policy{}, fmt.Errorf("%w: cipher suite %s: %s", ErrLooserThanPolicy, name, SuiteWeakness(id))
			}
			if slices.Contains(p.CipherSuites, id) {
				return Policy{}, fmt.Errorf("%w: cipher suite %s listed twice", ErrInvalidConfig, name)
			}
			p.CipherSuites = append(p.CipherSuites, id)
		}
	}
	if c.Curves != nil {
		p.Curves = nil
		for _, name := range c.Curves {
			id, ok := curveByName(name)
			if !ok {
				return Policy{}, fmt.Errorf("%w: unknown key exchange group %q", ErrInvalidConfig, name)
			}
			if !slices.Contains(defaultCurves, id) {
				return Policy{}, fmt.Errorf("%w: key exchange group %s is not in the policy", ErrLooserThanPolicy, name)
			}
			if slices.Contains(p.Curves, id) {
				return Policy{}, fmt.Errorf("%w: key exchange group %s listed twice", ErrInvalidConfig, name)
			}
			p.Curves = append(p.Curves, id)
		}
	}
	if err := p.Validate(); err != nil {
		return Policy{}, err
	}
	return p, nil
}

func suiteByName(name string) (uint16, bool) {
	for _, s := range allSuites() {
		if s.Name == name {
			return s.ID, true
		}
	}
	return 0, false
}

func allSuites() []*tls.CipherSuite {
	return append(tls.CipherSuites(), tls.InsecureCipherSuites()...)
}

var curveNames = map[string]tls.CurveID{
	"X25519MLKEM768":     tls.X25519MLKEM768,
	"SecP256r1MLKEM768":  tls.SecP256r1MLKEM768,
	"SecP384r1MLKEM1024": tls.SecP384r1MLKEM1024,
	"X25519":             tls.X25519,
	"P-256":              tls.CurveP256,
	"P-384":              tls.CurveP384,
	"P-521":              tls.CurveP521,
	"CurveP256":          tls.CurveP256,
	"CurveP384":          tls.CurveP384,
	"CurveP521":          tls.CurveP521,
}

func curveByName(name string) (tls.CurveID, bool) {
	id, ok := curveNames[name]
	return id, ok
}

// versionSSL30 is named in reports of what peers offered; crypto/tls
// deprecates its constant.
const versionSSL30 = 0x0300

// VersionName names a protocol version as reports print it ("TLS 1.2");
// unknown versions are printed in hex.
func VersionName(v uint16) string {
	switch v {
	case tls.VersionTLS10:
		return "TLS 1.0"
	case tls.VersionTLS11:
		return "TLS 1.1"
	case tls.VersionTLS12:
		return "TLS 1.2"
	case tls.VersionTLS13:
		return "TLS 1.3"
	case versionSSL30:
		return "SSL 3.0"
	}
	return fmt.Sprintf("0x%04X", v)
}

// base returns the settings every coffer endpoint shares.
func (p Policy) base() *tls.Config {
	return &tls.Config{
		MinVersion:       p.MinVersion,
		MaxVersion:       tls.VersionTLS13,
		CipherSuites:     slices.Clone(p.CipherSuites),
		CurvePreferences: slices.Clone(p.Curves),
		Renegotiation:    tls.RenegotiateNever,
	}
}

// ServerConfig returns the server's config: the policy, cert (whose chain
// should end with the CA, see pki.KeyPair.TLSCertificate), client
// certificates required and verified against clientCAs, and verify (the
// revocation check) run as VerifyConnection, which crypto/tls calls on full
// and resumed handshakes alike. Its error is wrapped in ErrPeerRejected.
//
// A client offering exactly the ALPN protocol EnrollmentProto gets a config
// without client authentication and without session tickets, negotiating
// EnrollmentProto; the server must route such connections to the enrollment
// endpoint only (with net/http: TLSNextProto[EnrollmentProto]; an
// unregistered protocol is closed by net/http). All others negotiate h2 or
// http/1.1 and must present a certificate.
func (p Policy) ServerConfig(cert tls.Certificate, clientCAs *x509.CertPool, verify func(tls.ConnectionState) error) *tls.Config {
	if clientCAs == nil {
		clientCAs = x509.NewCertPool()
	}
	cfg := p.base()
	cfg.Certificates = []tls.Certificate{cert}
	cfg.NextProtos = []string{"h2", "http/1.1"}

	enroll := cfg.Clone()
	enroll.ClientAuth = tls.NoClientCert
	enroll.NextProtos = []string{EnrollmentProto}
	enroll.SessionTicketsDisabled = true

	cfg.ClientAuth = tls.RequireAndVerifyClientCert
	cfg.ClientCAs = clientCAs
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		if verify == nil {
			return nil
		}
		if err := verify(cs); err != nil {
			return fmt.Errorf("%w: %w", ErrPeerRejected, err)
		}
		return nil
	}
	cfg.GetConfigForClient = func(chi *tls.ClientHelloInfo) (*tls.Config, error) {
		if len(chi.SupportedProtos) == 1 && chi.SupportedProtos[0] == EnrollmentProto {
			return enroll, nil
		}
		return nil, nil
	}
	return cfg
}

// ClientConfig returns a client config that presents cert and trusts only
// rootCAs (the pinned coffer CA; the system roots are never consulted, and
// a nil pool trusts nothing), for serverName, with a session cache.
func (p Policy) ClientConfig(cert tls.Certificate, rootCAs *x509.CertPool, serverName string) *tls.Config {
	if rootCAs == nil {
		rootCAs = x509.NewCertPool()
	}
	cfg := p.base()
	cfg.Certificates = []tls.Certificate{cert}
	cfg.RootCAs = rootCAs
	cfg.ServerName = serverName
	cfg.NextProtos = []string{"h2", "http/1.1"}
	cfg.ClientSessionCache = tls.NewLRUClientSessionCache(64)
	return cfg
}

// EnrollmentConfig returns the config of an enrolling client, which has no
// CA yet: crypto/tls's chain check is replaced by verify, which must check
// the whole chain against the token's CA fingerprint and serverName (see
// pki.FingerprintVerifier). It runs in the handshake, before any byte of
// application data (the token secret) is sent. It panics if verify is nil.
func (p Policy) EnrollmentConfig(serverName string, verify func(tls.ConnectionState) error) *tls.Config {
	if verify == nil {
		panic("tlspolicy: EnrollmentConfig needs a verify function")
	}
	cfg := p.base()
	cfg.ServerName = serverName
	cfg.NextProtos = []string{EnrollmentProto}
	// #nosec G402 -- the chain is verified in VerifyConnection against the CA fingerprint from the token, which crypto/tls cannot do with RootCAs.
	cfg.InsecureSkipVerify = true
	cfg.VerifyConnection = verify
	return cfg
}
