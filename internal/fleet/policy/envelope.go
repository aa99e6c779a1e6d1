package policy

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
)

// MaxSigned bounds a signed policy, envelope included.
const MaxSigned = 1 << 20

// signDomain is prefixed to the policy bytes before signing, so that no
// signature made with the policy key can be taken for anything else.
const signDomain = "coffer-policy-v1\n"

// Refusals. Verify wraps exactly one of these (with ErrInvalid, ErrVersion)
// so the agent can report why it refused a policy.
var (
	// ErrBadSignature: the envelope is not one this package writes, was
	// signed by another key, or its signature does not cover its bytes.
	ErrBadSignature = errors.New("policy signature does not verify")
	// ErrTooLarge: the signed policy is over MaxSigned bytes.
	ErrTooLarge = errors.New("signed policy too large")
	// ErrWrongClient: the policy is for another host.
	ErrWrongClient = errors.New("policy names another client")
	// ErrReplayed: the policy's generation is below the one already held.
	ErrReplayed = errors.New("policy generation is older than the one held")
)

// envelope is the signed form on the wire and in the cache:
// {"key":KEYID,"policy":BASE64,"sig":BASE64}, exactly these keys.
type envelope struct {
	Key    string `json:"key"`
	Policy string `json:"policy"`
	Sig    string `json:"sig"`
}

var b64 = base64.StdEncoding.Strict()

// KeyID names a policy public key: the first 8 bytes of its SHA-256, in hex.
func KeyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:8])
}

// Sign validates p and returns it signed with priv: the envelope the server
// sends and the agent caches. The signature covers signDomain followed by
// the exact policy bytes the envelope carries.
func Sign(priv ed25519.PrivateKey, p *Policy) ([]byte, error) {
	if len(priv) != ed25519.PrivateKeySize {
		return nil, errors.New("sign policy: not an Ed25519 private key")
	}
	if err := p.Validate(); err != nil {
		return nil, fmt.Errorf("sign policy: %w", err)
	}
	doc, err := json.Marshal(p)
	if err != nil {
		return nil, fmt.Errorf("sign policy: %w", err)
	}
	pub, _ := priv.Public().(ed25519.PublicKey)
	env, err := json.Marshal(envelope{
		Key:    KeyID(pub),
		Policy: b64.EncodeToString(doc),
		Sig:    b64.EncodeToString(ed25519.Sign(priv, signedMessage(doc))),
	})
	if err != nil {
		return nil, fmt.Errorf("sign policy: %w", err)
	}
	return append(env, '\n'), nil
}

func signedMessage(doc []byte) []byte {
	return append([]byte(signDomain), doc...)
}

// Verify checks a signed policy and returns it. In this order, each refusal
// wrapping its own error: the size (ErrTooLarge); the envelope and the
// signature with pub (ErrBadSignature), before any byte of the policy is
// parsed; the policy's version (ErrVersion); a strict decode and Validate
// (ErrInvalid); its client (ErrWrongClient); and that its generation is at
// least minGeneration, the generation already held (ErrReplayed). An
// equal generation is accepted: the same policy sent again.
func Verify(signed []byte, pub ed25519.PublicKey, client string, minGeneration uint64) (*Policy, error) {
	doc, err := open(signed, pub)
	if err != nil {
		return nil, err
	}
	p, err := decode(doc)
	if err != nil {
		return nil, err
	}
	if p.Client != client {
		return nil, fmt.Errorf("%w: policy for %q, this host is %q", ErrWrongClient, p.Client, client)
	}
	if p.Generation < minGeneration {
		return nil, fmt.Errorf("%w: generation %d, already held %d", ErrReplayed, p.Generation, minGeneration)
	}
	return p, nil
}

// open checks the envelope and its signature and returns the policy bytes.
func open(signed []byte, pub ed25519.PublicKey) ([]byte, error) {
	if len(signed) > MaxSigned {
		return nil, fmt.Errorf("%w: %d bytes, at most %d", ErrTooLarge, len(signed), MaxSigned)
	}
	if len(pub) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("%w: no Ed25519 public key to verify with", ErrBadSignature)
	}
	env, err := decodeEnvelope(signed)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadSignature, err)
	}
	if want := KeyID(pub); env.Key != want {
		return nil, fmt.Errorf("%w: signed by key %q, this host trusts key %s", ErrBadSignature, env.Key, want)
	}
	doc, err := b64.DecodeString(env.Policy)
	if err != nil {
		return nil, fmt.Errorf("%w: policy is not base64", ErrBadSignature)
	}
	sig, err := b64.DecodeString(env.Sig)
	if err != nil || len(sig) != ed25519.SignatureSize {
		return nil, fmt.Errorf("%w: sig is not a base64 Ed25519 signature", ErrBadSignature)
	}
	if !ed25519.Verify(pub, signedMessage(doc), sig) {
		return nil, fmt.Errorf("%w: key %s", ErrBadSignature, env.Key)
	}
	return doc, nil
}

// decodeEnvelope reads the envelope through a map, so its keys must be
// spelled exactly (encoding/json folds case for struct fields), with
// nothing but one optional newline after it.
func decodeEnvelope(signed []byte) (envelope, error) {
	var fields map[string]json.RawMessage
	rest, err := decodeOne(signed, &fields, false)
	if err != nil {
		return envelope{}, fmt.Errorf("envelope: %w", err)
	}
	if !bytes.Equal(rest, []byte("\n")) && len(rest) != 0 {
		return envelope{}, errors.New("envelope: data after the envelope")
	}
	var env envelope
	want := map[string]*string{"key": &env.Key, "policy": &env.Policy, "sig": &env.Sig}
	if len(fields) != len(want) {
		return envelope{}, fmt.Errorf("envelope: %d fields, want key, policy and sig", len(fields))
	}
	for name, dst := range want {
		raw, ok := fields[name]
		if !ok {
			return envelope{}, fmt.Errorf("envelope: no %q", name)
		}
		if len(raw) < 2 || raw[0] != '"' || bytes.IndexByte(raw, '\\') >= 0 {
			return envelope{}, fmt.Errorf("envelope: %q is not a plain string", name)
		}
		*dst = string(raw[1 : len(raw)-1])
	}
	return env, nil
}

// decodeOne decodes one JSON value from data into v and returns what
// follows it.
func decodeOne(data []byte, v any, strict bool) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	if strict {
		dec.DisallowUnknownFields()
	}
	if err := dec.Decode(v); err != nil {
		return nil, err
	}
	return data[dec.InputOffset():], nil
}

// decode reads verified policy bytes: the version first, so that a newer
// policy is reported as such rather than as unknown fields; then strictly,
// no unknown field and nothing after the document; then Validate.
func decode(doc []byte) (*Policy, error) {
	var v struct {
		Version *int `json:"version"`
	}
	if _, err := decodeOne(doc, &v, false); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if v.Version == nil {
		return nil, fmt.Errorf("%w: version: missing", ErrInvalid)
	}
	if *v.Version != Version {
		return nil, fmt.Errorf("%w %d: this coffer reads version %d", ErrVersion, *v.Version, Version)
	}
	p := new(Policy)
	rest, err := decodeOne(doc, p, true)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		return nil, fmt.Errorf("%w: data after the policy", ErrInvalid)
	}
	if err := p.Validate(); err != nil {
		return nil, err
	}
	return p, nil
}
