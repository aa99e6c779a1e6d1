package pki

import (
	"crypto/x509"
	"fmt"
	"net/url"
	"strings"
)

// MaxClientName is the longest client name.
const MaxClientName = 63

// URI SAN prefixes naming a principal: a host (client) or a person (user).
const (
	clientURIPrefix = "urn:coffer:client:"
	userURIPrefix   = "urn:coffer:user:"
)

// Principal kinds a certificate names.
const (
	KindClient = "client" // a host: urn:coffer:client:NAME, a storage namespace
	KindUser   = "user"   // a person: urn:coffer:user:NAME, no storage namespace
)

// UserTokenPrefix marks a person's name where token records keep host and
// person names in one column ("user:alice"); host names cannot hold ':'.
const UserTokenPrefix = "user:"

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

func userURI(name string) *url.URL {
	u, _ := url.Parse(userURIPrefix + name) // name is validated: a-z0-9._- only
	return u
}

// ValidateTokenName accepts what a token record may name: a client name,
// or UserTokenPrefix and a user name (the client rules).
func ValidateTokenName(name string) error {
	return ValidateClientName(strings.TrimPrefix(name, UserTokenPrefix))
}

// PrincipalOf returns the kind (KindClient or KindUser) and name of a
// certificate this CA issued: its common name, which must equal its single
// coffer URI SAN. Call it only on verified chains.
func PrincipalOf(cert *x509.Certificate) (kind, name string, err error) {
	name = cert.Subject.CommonName
	if err := ValidateClientName(name); err != nil {
		return "", "", err
	}
	if len(cert.URIs) == 1 {
		switch cert.URIs[0].String() {
		case clientURIPrefix + name:
			return KindClient, name, nil
		case userURIPrefix + name:
			return KindUser, name, nil
		}
	}
	return "", "", fmt.Errorf("%w: certificate URI SAN does not name client or user %q", ErrInvalidName, name)
}

// UserName returns the person a user certificate names (PrincipalOf's
// KindUser); a host certificate is ErrInvalidName.
func UserName(cert *x509.Certificate) (string, error) {
	kind, name, err := PrincipalOf(cert)
	if err != nil {
		return "", err
	}
	if kind != KindUser {
		return "", fmt.Errorf("%w: certificate names client %q, not a user", ErrInvalidName, name)
	}
	return name, nil
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
