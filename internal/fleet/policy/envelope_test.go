package policy

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	want := validPolicy()
	signed := mustSign(t, want)
	got, err := Verify(signed, testPub(), want.Client, want.Generation)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, want)
	}
	// The envelope carries exactly what was signed: the policy's JSON.
	var env envelope
	if err := json.Unmarshal(signed, &env); err != nil {
		t.Fatal(err)
	}
	doc, err := b64.DecodeString(env.Policy)
	if err != nil || !bytes.Equal(doc, marshal(t, want)) {
		t.Fatalf("envelope policy %q, %v", doc, err)
	}
	if env.Key != KeyID(testPub()) || !ed25519.Verify(testPub(), append([]byte("coffer-policy-v1\n"), doc...), mustB64(t, env.Sig)) {
		t.Fatal("the signature does not cover the domain and the policy bytes")
	}
}

func mustB64(t *testing.T, s string) []byte {
	t.Helper()
	b, err := b64.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestTamperedByteAnywhere: changing any one byte of a signed policy, in
// any of several ways, or cutting it short, is refused as a bad signature.
func TestTamperedByteAnywhere(t *testing.T) {
	t.Parallel()
	p := validPolicy()
	signed := mustSign(t, p)
	for i := range signed {
		for _, f := range []func(byte) byte{
			func(b byte) byte { return b ^ 0x01 },
			func(b byte) byte { return b ^ 0x20 }, // case of a letter
			func(b byte) byte { return b ^ 0x80 },
			func(byte) byte { return ' ' },
			func(byte) byte { return '\\' },
		} {
			bad := bytes.Clone(signed)
			bad[i] = f(bad[i])
			if bytes.Equal(bad, signed) {
				continue
			}
			if _, err := Verify(bad, testPub(), p.Client, 0); !errors.Is(err, ErrBadSignature) {
				t.Fatalf("byte %d changed to %q: Verify = %v, want ErrBadSignature", i, bad[i], err)
			}
		}
	}
	for n := range len(signed) - 1 {
		if _, err := Verify(signed[:n], testPub(), p.Client, 0); !errors.Is(err, ErrBadSignature) {
			t.Fatalf("cut to %d bytes: Verify = %v", n, err)
		}
	}
}

func TestRefusals(t *testing.T) {
	t.Parallel()
	p := validPolicy()
	signed := mustSign(t, p)
	otherPub, otherPriv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	withVersion := func(v any) []byte {
		var m map[string]any
		if err := json.Unmarshal(marshal(t, p), &m); err != nil {
			t.Fatal(err)
		}
		m["version"] = v
		return marshal(t, m)
	}
	invalidSchedule := validPolicy()
	invalidSchedule.Repositories[0].Schedule = "every 1s"
	doc := marshal(t, p)
	withField := append(bytes.TrimSuffix(bytes.Clone(doc), []byte("}")), []byte(`,"surprise":1}`)...)
	cases := []struct {
		name   string
		signed []byte
		pub    ed25519.PublicKey
		client string
		min    uint64
		want   error
	}{
		{"another key", signed, otherPub, p.Client, 0, ErrBadSignature},
		{"no key", signed, nil, p.Client, 0, ErrBadSignature},
		{"signed by another key with this key's id", retagged(t, mustSignWith(t, otherPriv, p), testPub()), testPub(), p.Client, 0, ErrBadSignature},
		{"another client", signed, testPub(), "web-2", 0, ErrWrongClient},
		{"older generation", signed, testPub(), p.Client, p.Generation + 1, ErrReplayed},
		{"invalid schedule", signRaw(t, testKey, marshal(t, invalidSchedule)), testPub(), p.Client, 0, ErrInvalid},
		{"unknown field", signRaw(t, testKey, withField), testPub(), p.Client, 0, ErrInvalid},
		{"trailing data", signRaw(t, testKey, append(bytes.Clone(doc), []byte(" {}")...)), testPub(), p.Client, 0, ErrInvalid},
		{"two documents", signRaw(t, testKey, append(bytes.Clone(doc), doc...)), testPub(), p.Client, 0, ErrInvalid},
		{"not JSON", signRaw(t, testKey, []byte("version: 1")), testPub(), p.Client, 0, ErrInvalid},
		{"wrong type", signRaw(t, testKey, bytes.Replace(doc, []byte(`"generation":7`), []byte(`"generation":"7"`), 1)), testPub(), p.Client, 0, ErrInvalid},
		{"bad duration", signRaw(t, testKey, bytes.Replace(doc, []byte(`"jitter":"10m"`), []byte(`"jitter":"-10m"`), 1)), testPub(), p.Client, 0, ErrInvalid},
		{"no version", signRaw(t, testKey, []byte(`{"client":"web-1.example"}`)), testPub(), p.Client, 0, ErrInvalid},
		{"version 2", signRaw(t, testKey, withVersion(2)), testPub(), p.Client, 0, ErrVersion},
		{"oversize", append(bytes.Clone(signed), bytes.Repeat([]byte(" "), MaxSigned)...), testPub(), p.Client, 0, ErrTooLarge},
		{"envelope with a space after it", append(bytes.Clone(signed), ' '), testPub(), p.Client, 0, ErrBadSignature},
		{"envelope with another field", bytes.Replace(signed, []byte(`{"key"`), []byte(`{"x":"","key"`), 1), testPub(), p.Client, 0, ErrBadSignature},
		{"envelope with an escaped string", bytes.Replace(signed, []byte(`"key":"`), []byte(`"key":"\u0030`), 1), testPub(), p.Client, 0, ErrBadSignature},
		{"empty", nil, testPub(), p.Client, 0, ErrBadSignature},
	}
	for _, c := range cases {
		if !bytes.Contains(doc, []byte(`"jitter":"10m"`)) || !bytes.Contains(doc, []byte(`"generation":7`)) {
			t.Fatalf("the test's edits no longer match the encoding: %s", doc)
		}
		got, err := Verify(c.signed, c.pub, c.client, c.min)
		if !errors.Is(err, c.want) || got != nil {
			t.Errorf("%s: Verify = %v, %v; want %v", c.name, got, err, c.want)
		}
		for _, other := range []error{ErrBadSignature, ErrWrongClient, ErrReplayed, ErrInvalid, ErrVersion, ErrTooLarge} {
			if other != c.want && errors.Is(err, other) {
				t.Errorf("%s: %v also matches %v", c.name, err, other)
			}
		}
	}
	// The same generation again is the same policy: accepted.
	if _, err := Verify(signed, testPub(), p.Client, p.Generation); err != nil {
		t.Errorf("same generation: %v", err)
	}
	// One trailing newline, as Sign writes, or none.
	if _, err := Verify(bytes.TrimSuffix(signed, []byte("\n")), testPub(), p.Client, 0); err != nil {
		t.Errorf("no final newline: %v", err)
	}
}

// TestSignatureCheckedBeforeParsing: a policy that would fail to parse is
// still refused as a bad signature when its signature is bad, so nothing
// unsigned ever reaches the decoder.
func TestSignatureCheckedBeforeParsing(t *testing.T) {
	t.Parallel()
	_, otherPriv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	bad := retagged(t, signRaw(t, otherPriv, []byte("{not json")), testPub())
	if _, err := Verify(bad, testPub(), "web-1.example", 0); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("Verify = %v", err)
	}
}

func mustSignWith(t *testing.T, priv ed25519.PrivateKey, p *Policy) []byte {
	t.Helper()
	signed, err := Sign(priv, p)
	if err != nil {
		t.Fatal(err)
	}
	return signed
}

// retagged rewrites an envelope's key id to pub's.
func retagged(t *testing.T, signed []byte, pub ed25519.PublicKey) []byte {
	t.Helper()
	var env envelope
	if err := json.Unmarshal(signed, &env); err != nil {
		t.Fatal(err)
	}
	env.Key = KeyID(pub)
	return marshal(t, env)
}

func TestSignRefusesBadKey(t *testing.T) {
	t.Parallel()
	if _, err := Sign(testKey[:10], validPolicy()); err == nil || strings.Contains(err.Error(), "invalid policy") {
		t.Fatalf("Sign with a short key: %v", err)
	}
}
