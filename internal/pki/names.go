package pki

import (
	"crypto/x509"
	"fmt"
	"net/url"
	"strings"
)

// MaxClientName is the longest client name.
const MaxClientName = 63

// clientURIPrefix is the scheme of the URI SAN naming a client.
const clientURIPrefix = "urn:coffer:client:"

// ValidateClientName accepts 1-63 characters of [a-z0-9._-], starting with a
// letter or digit, without "..": the name is also a storage namespace and
// must be the same on case-insensitive file systems.
func ValidateClientName(name string) error {
	if len(name) == 0 || len(name) > MaxClientName {
		return fmt.Errorf("%w: client name must be 1-%d characters", ErrInvalidName, MaxClientName)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case (c == '.' || c == '_' || c == '-') && i > 0:
		default:
			return fmt.Errorf("%w: client name %q: only a-z, 0-9, '.', '_', '-' allowed, starting with a letter or digit", ErrInvalidName, name)
		}
	}
	if strings.Contains(name, "..") {
		return fmt.Errorf("%w: client name %q contains \"..\"", ErrInvalidName, name)
	}
	return nil
}

func clientURI(name string) *url.URL {
	u, _ := url.Parse(clientURIPrefix + name) // name is validated: a-z0-9._- only
	return u
}

// ClientName returns the enrolled client name of a certificate this CA
// issued: its common name, which must equal its single coffer URI SAN.
// Call it only on verified chains.
func ClientName(cert *x509.Certificate) (string, error) {
	name := cert.Subject.CommonName
	if err := ValidateClientName(name); err != nil {
		return "", err
	}
	if len(cert.URIs) != 1 || cert.URIs[0].String() != clientURIPrefix+name {
		return "", fmt.Errorf("%w: certificate URI SAN does not name client %q", ErrInvalidName, name)
	}
	return name, nil
}

// validateDNSName accepts host names for server certificates: labels of
// letters, digits and hyphens, at most 253 characters.
func validateDNSName(n string) error {
	if len(n) == 0 || len(n) > 253 {
		return fmt.Errorf("%w: server name %q", ErrInvalidName, n)
	}
	for _, label := range strings.Split(n, ".") {
		if len(label) == 0 || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return fmt.Errorf("%w: server name %q", ErrInvalidName, n)
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return fmt.Errorf("%w: server name %q", ErrInvalidName, n)
			}
		}
	}
	return nil
}
