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
	"strings"

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

// answerFields are the fields of Response, as decodeAnswer reads them.
var answerFields = []string{"cert", "ca", "policy_pub"}

// decodeAnswer decodes a Response from one JSON object of at most MaxBody
// bytes with nothing after it. Fields it does not know are skipped, of any
// JSON type; a known field must be a string and appear once, and a field
// that differs from a known one only in case is refused, since Go's
// decoder would otherwise take it for the known one.
func decodeAnswer(b []byte) (Response, error) {
	var resp Response
	if len(b) > MaxBody {
		return resp, fmt.Errorf("%w: %d bytes", ErrMalformed, len(b))
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return resp, fmt.Errorf("%w: want a JSON object", ErrMalformed)
	}
	got := map[string]string{}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return resp, fmt.Errorf("%w: %w", ErrMalformed, err)
		}
		key, _ := t.(string) // object keys are strings
		if err := answerField(dec, key, got); err != nil {
			return resp, err
		}
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return resp, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return resp, fmt.Errorf("%w: data after the JSON object", ErrMalformed)
	}
	return Response{Cert: got["cert"], CA: got["ca"], PolicyPub: got["policy_pub"]}, nil
}

// answerField reads the value of key into got if it is a known field, and
// skips it otherwise.
func answerField(dec *json.Decoder, key string, got map[string]string) error {
	for _, f := range answerFields {
		switch {
		case key == f:
			if _, dup := got[f]; dup {
				return fmt.Errorf("%w: field %q twice", ErrMalformed, f)
			}
			var v string
			if err := dec.Decode(&v); err != nil {
				return fmt.Errorf("%w: field %q: %w", ErrMalformed, f, err)
			}
			got[f] = v
			return nil
		case strings.EqualFold(key, f):
			return fmt.Errorf("%w: field %q is not %q", ErrMalformed, key, f)
		}
	}
	var skip json.RawMessage
	if err := dec.Decode(&skip); err != nil {
		return fmt.Errorf("%w: field %q: %w", ErrMalformed, key, err)
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
//
// Unlike the requests the server parses, an answer may carry fields this
// client does not know: a newer server adds them (policy_pub was one), and
// an older client must still enroll with it. The fields it knows stay
// strict (decodeAnswer): each at most once, spelled exactly, a string.
func ParseAnswer(b []byte) (*Answer, error) {
	resp, err := decodeAnswer(b)
	if err != nil {
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
