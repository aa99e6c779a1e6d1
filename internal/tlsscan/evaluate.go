package tlsscan

import (
	"crypto/tls"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/coffer-backup/coffer/internal/tlspolicy"
)

// Evaluate returns the findings of report r against p at now: failures for
// anything weaker than the policy (old versions, suites outside the policy,
// no allowed version, an expired or weak certificate), warnings for what
// the policy prefers (TLS 1.3, a post-quantum group, expiry within 30 days).
func Evaluate(p tlspolicy.Policy, r *Report, now time.Time) []Finding {
	var f findings
	accepted, allowed := f.versions(p, r.Versions)
	f.suites(p, r.Suites)
	if allowed && !accepted[tls.VersionTLS13] {
		f.add(SeverityWarn, "does not accept TLS 1.3")
	}
	f.groups(p, r.Groups, accepted)
	if r.ClientCertRequested {
		f.add(SeverityInfo, "requests a client certificate")
	}
	if len(r.Chain) > 0 {
		f.validity(r.Chain[0], now)
		for i, c := range r.Chain {
			f.strength(c, c.Subject == c.Issuer && i == len(r.Chain)-1)
		}
	}
	return f
}

// findings collects the verdict's observations.
type findings []Finding

func (f *findings) add(sev, format string, args ...any) {
	*f = append(*f, Finding{Severity: sev, Message: fmt.Sprintf(format, args...)})
}

// versions fails every accepted version below the policy and a server that
// accepts none it allows. It returns the accepted versions and whether one
// of them is allowed.
func (f *findings) versions(p tlspolicy.Policy, vs []VersionResult) (accepted map[uint16]bool, allowed bool) {
	accepted = map[uint16]bool{}
	for _, v := range vs {
		if !v.Accepted {
			continue
		}
		accepted[v.ID] = true
		allowed = allowed || v.ID >= p.MinVersion
		if v.ID < p.MinVersion {
			f.add(SeverityFail, "accepts %s", v.Version)
		}
	}
	if !allowed {
		f.add(SeverityFail, "accepts no TLS version the policy allows (minimum %s)", versionName(p.MinVersion))
	}
	return accepted, allowed
}

// suites fails each accepted suite outside the policy, once, naming the
// versions that accepted it.
func (f *findings) suites(p tlspolicy.Policy, ss []SuiteResult) {
	var weak []SuiteResult
	weakAt := map[uint16][]string{}
	for _, s := range ss {
		if !s.Accepted || s.Allowed {
			continue
		}
		if _, seen := weakAt[s.ID]; !seen {
			weak = append(weak, s)
		}
		weakAt[s.ID] = append(weakAt[s.ID], s.Version)
	}
	for _, s := range weak {
		reason := tlspolicy.SuiteWeakness(s.ID)
		if slices.Contains(p.CipherSuites, s.ID) {
			reason = "only allowed from " + versionName(p.MinVersion)
		}
		f.add(SeverityFail, "accepts %s with %s: %s", s.Suite, strings.Join(weakAt[s.ID], ", "), reason)
	}
}

// groups warns when TLS 1.3 has no post-quantum hybrid and notes groups
// outside the policy's list.
func (f *findings) groups(p tlspolicy.Policy, gs []GroupResult, accepted map[uint16]bool) {
	if accepted[tls.VersionTLS13] && !slices.ContainsFunc(gs, func(g GroupResult) bool {
		return g.Accepted && tlspolicy.IsHybrid(tls.CurveID(g.ID))
	}) {
		f.add(SeverityWarn, "does not accept a hybrid post-quantum key exchange (X25519MLKEM768)")
	}
	for _, g := range gs {
		if g.Accepted && !slices.Contains(p.Curves, tls.CurveID(g.ID)) {
			f.add(SeverityInfo, "accepts key exchange group %s with %s, outside the policy's list", g.Group, g.Version)
		}
	}
}

// validity fails a leaf outside its validity period and warns within 30
// days of its expiry.
func (f *findings) validity(leaf CertInfo, now time.Time) {
	switch {
	case now.After(leaf.NotAfter):
		f.add(SeverityFail, "certificate %q expired on %s", leaf.Subject, leaf.NotAfter.Format(time.DateOnly))
	case now.Before(leaf.NotBefore):
		f.add(SeverityFail, "certificate %q is not valid before %s", leaf.Subject, leaf.NotBefore.Format(time.RFC3339))
	case leaf.NotAfter.Sub(now) < 30*24*time.Hour:
		f.add(SeverityWarn, "certificate %q expires on %s", leaf.Subject, leaf.NotAfter.Format(time.DateOnly))
	}
}

// strength fails an RSA key under 2048 bits and a SHA-1, MD5 or MD2
// signature, except on a self-signed root, whose signature nobody checks.
func (f *findings) strength(c CertInfo, selfSignedRoot bool) {
	var bits int
	if _, err := fmt.Sscanf(c.KeyType, "RSA %d", &bits); err == nil && bits < 2048 {
		f.add(SeverityFail, "certificate %q has a %d-bit RSA key", c.Subject, bits)
	}
	if !selfSignedRoot && (strings.Contains(c.SigAlg, "SHA1") || strings.Contains(c.SigAlg, "MD5") || strings.Contains(c.SigAlg, "MD2")) {
		f.add(SeverityFail, "certificate %q is signed with %s", c.Subject, c.SigAlg)
	}
}
