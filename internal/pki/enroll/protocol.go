// Package enroll is the enrollment protocol of the coffer server: the JSON
// bodies both sides parse strictly, and the client that enrolls and renews.
//
// The client checks the server against the token's CA fingerprint during
// the handshake, before it sends anything.
package enroll

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"

	"github.com/coffer-backup/coffer/internal/fleet/policy"
	"github.com/coffer-backup/coffer/internal/pki"
)

// Paths of the protocol (docs/protocol.md §3). EnrollPath is served on
// enrollment connections (ALPN coffer-enroll/1, no client certificate);
// RenewPath only to an authenticated client.
const (
	EnrollPath = "/v1/enroll"
	RenewPath  = "/v1/renew"
)

// MaxBody bounds a request or response body.
const MaxBody = 64 << 10

// ErrMalformed is wrapped by every parse error of a body.
var ErrMalformed = errors.New("malformed enrollment message")

// Request is the body of POST /v1/enroll: the token and a PEM
// "CERTIFICATE REQUEST" made with the client's own key.
type Request struct {
	Token string `json:"token"`
	CSR   string `json:"csr"`
}

// RenewRequest is the body of POST /v1/renew: a CSR for the key the client
// keeps (or a new one).
type RenewRequest struct {
	CSR string `json:"csr"`
}

// Response answers both: the client certificate and the CA certificate,
// each one PEM block, and, from a server with a fleet, its policy signing
// key (a PEM "PUBLIC KEY" block) for the client to pin.
type Response struct {
	Cert      string `json:"cert"`
	CA        string `json:"ca"`
	PolicyPub string `json:"policy_pub,omitempty"`
}

// Answer is a parsed Response.
type Answer struct {
	CertPEM, CAPEM []byte
	// PolicyPub is the server's policy signing key; nil from a server that
	// sends none.
	PolicyPub ed25519.PublicKey
}

// decodeStrict decodes one JSON object into v: no unknown fields, nothing
// after it, at most MaxBody bytes.
func decodeStrict(b []byte, v any) error {
	if len(b) > MaxBody {
		return fmt.Errorf("%w: %d bytes", ErrMalformed, len(b))
	}
	if t := bytes.TrimSpace(b); len(t) == 0 || t[0] != '{' {
		return fmt.Errorf("%w: want a JSON object", ErrMalformed)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return fmt.Errorf("%w: data after the JSON object", ErrMalformed)
	}
	return nil
}

// onePEM returns the DER of the single PEM block of type typ in s.
func onePEM(s, typ string) ([]byte, error) {
	block, rest := pem.Decode([]byte(s))
	if block == nil || block.Type != typ || len(block.Headers) != 0 || len(bytes.TrimSpace(rest)) != 0 {
		return nil, fmt.Errorf("%w: want exactly one PEM %s block", ErrMalformed, typ)
	}
	return block.Bytes, nil
}

// ParseRequest parses an enrollment body: a well-formed token (errors wrap
// pki.ErrTokenMalformed) and one CSR block (its signature and key are
// checked by pki.CA.Enroll). Other errors wrap ErrMalformed.
func ParseRequest(b []byte) (*pki.Token, []byte, error) {
	var req Request
	if err := decodeStrict(b, &req); err != nil {
		return nil, nil, err
	}
	tok, err := pki.ParseToken(req.Token)
	if err != nil {
		return nil, nil, err
	}
	csr, err := onePEM(req.CSR, "CERTIFICATE REQUEST")
	if err != nil {
		return nil, nil, err
	}
	return tok, csr, nil
}

// ParseRenewRequest parses a renewal body and returns the CSR's DER.
func ParseRenewRequest(b []byte) ([]byte, error) {
	var req RenewRequest
	if err := decodeStrict(b, &req); err != nil {
		return nil, err
	}
	return onePEM(req.CSR, "CERTIFICATE REQUEST")
}

// ParseResponse parses the server's answer and returns the certificate's
// and the CA's PEM, each checked to be one certificate block.
func ParseResponse(b []byte) (certPEM, caPEM []byte, err error) {
	a, err := ParseAnswer(b)
	if err != nil {
		return nil, nil, err
	}
	return a.CertPEM, a.CAPEM, nil
}

// ParseAnswer parses the server's answer like ParseResponse, and the
// policy key if there is one (one PEM "PUBLIC KEY" block of an Ed25519
// key).
func ParseAnswer(b []byte) (*Answer, error) {
	var resp Response
	if err := decodeStrict(b, &resp); err != nil {
		return nil, err
	}
	if _, err := pki.ParseCertPEM([]byte(resp.Cert)); err != nil {
		return nil, fmt.Errorf("%w: certificate: %w", ErrMalformed, err)
	}
	if _, err := pki.ParseCertPEM([]byte(resp.CA)); err != nil {
		return nil, fmt.Errorf("%w: CA certificate: %w", ErrMalformed, err)
	}
	a := &Answer{CertPEM: []byte(resp.Cert), CAPEM: []byte(resp.CA)}
	if resp.PolicyPub != "" {
		pub, err := policy.ParsePublicKey([]byte(resp.PolicyPub))
		if err != nil {
			return nil, fmt.Errorf("%w: policy key: %w", ErrMalformed, err)
		}
		a.PolicyPub = pub
	}
	return a, nil
}

// EncodeResponse returns the JSON body answering an enrollment or renewal.
func EncodeResponse(certDER, caDER []byte) []byte {
	return EncodeAnswer(certDER, caDER, nil)
}

// EncodeAnswer is EncodeResponse with the server's policy key (nil: none).
func EncodeAnswer(certDER, caDER []byte, policyPub ed25519.PublicKey) []byte {
	r := Response{Cert: string(pki.EncodeCertPEM(certDER)), CA: string(pki.EncodeCertPEM(caDER))}
	if policyPub != nil {
		if pemKey, err := policy.MarshalPublicKey(policyPub); err == nil {
			r.PolicyPub = string(pemKey)
		}
	}
	b, _ := json.Marshal(r) // strings only: cannot fail
	return b
}

func encodeCSR(der []byte) string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
}
