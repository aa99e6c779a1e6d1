package pki

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"math/big"
	"sync"
)

// ErrRevoked is returned for a certificate whose serial is revoked.
var ErrRevoked = errors.New("certificate revoked")

// RevocationList is a set of revoked certificate serials, safe for
// concurrent use. crypto/x509 checks no revocation, so the server consults
// it in VerifyConnection (full and resumed handshakes) and on every request.
// The zero value is an empty list.
type RevocationList struct {
	mu      sync.RWMutex
	serials map[string]struct{}
}

func serialKey(s *big.Int) string { return s.Text(16) }

// Contains reports whether serial is revoked.
func (r *RevocationList) Contains(serial *big.Int) bool {
	if serial == nil {
		return false
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	_, ok := r.serials[serialKey(serial)]
	return ok
}

// Add revokes serial.
func (r *RevocationList) Add(serial *big.Int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.serials == nil {
		r.serials = make(map[string]struct{})
	}
	r.serials[serialKey(serial)] = struct{}{}
}

// Replace swaps the whole set, as the server does when it reloads the list
// from its database.
func (r *RevocationList) Replace(serials []*big.Int) {
	m := make(map[string]struct{}, len(serials))
	for _, s := range serials {
		m[serialKey(s)] = struct{}{}
	}
	r.mu.Lock()
	r.serials = m
	r.mu.Unlock()
}

// Len returns the number of revoked serials.
func (r *RevocationList) Len() int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return len(r.serials)
}

// Check returns an error wrapping ErrRevoked if cert is revoked.
func (r *RevocationList) Check(cert *x509.Certificate) error {
	if r.Contains(cert.SerialNumber) {
		return fmt.Errorf("%w: serial %s (%s)", ErrRevoked, cert.SerialNumber.Text(16), cert.Subject.CommonName)
	}
	return nil
}

// VerifyConnection is a tls.Config.VerifyConnection hook for the server: it
// refuses a connection whose client certificate is revoked.
func (r *RevocationList) VerifyConnection(cs tls.ConnectionState) error {
	if len(cs.PeerCertificates) == 0 {
		return nil
	}
	return r.Check(cs.PeerCertificates[0])
}
