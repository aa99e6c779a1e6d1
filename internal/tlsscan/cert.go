package tlsscan

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"fmt"

	"github.com/coffer-backup/coffer/internal/pki"
)

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
	ci.Fingerprint = pki.FormatFingerprint(h)
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
