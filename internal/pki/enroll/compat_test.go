package enroll

import (
	"bytes"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/coffer-backup/coffer/internal/pki"
)

// TestAnswerFromNewerServer: a frozen answer of a newer server, carrying
// fields this client does not know (an object, an array, a null, a
// string), still enrolls: cert, CA and policy key are read as before.
func TestAnswerFromNewerServer(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("testdata/answer-newer-server.json")
	if err != nil {
		t.Fatal(err)
	}
	a, err := ParseAnswer(b)
	if err != nil {
		t.Fatalf("an answer with unknown fields: %v", err)
	}
	if c, err := pki.ParseCertPEM(a.CertPEM); err != nil || c.Subject.CommonName != "alice" {
		t.Fatalf("certificate: %v", err)
	}
	if _, err := pki.ParseCertPEM(a.CAPEM); err != nil || len(a.PolicyPub) != 32 {
		t.Fatalf("CA %v, policy key %x", err, a.PolicyPub)
	}
}

// TestAnswerKnownFieldsStayStrict: what the client relies on is not
// loosened: a known field twice, in another case, or not a string, a body
// that is not one object, trailing data and bad PEM are refused.
func TestAnswerKnownFieldsStayStrict(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("testdata/answer-newer-server.json")
	if err != nil {
		t.Fatal(err)
	}
	good := string(bytes.TrimSpace(b))
	inner := strings.TrimSuffix(strings.TrimPrefix(good, "{"), "}")
	cases := map[string]string{
		"cert twice":          `{"cert":"x",` + inner + `}`,
		"policy key twice":    `{` + inner + `,"policy_pub":"x"}`,
		"another case":        `{"CA":"x",` + inner + `}`,
		"not a string":        `{"cert":1,` + strings.Replace(inner, `"cert"`, `"x"`, 1) + `}`,
		"trailing data":       good + ` {}`,
		"an array":            `[` + good + `]`,
		"bad JSON in unknown": `{"x":[1,` + inner + `}`,
		"bad policy key":      strings.Replace(good, "BEGIN PUBLIC KEY", "BEGIN PRIVATE KEY", 1),
		"no certificate":      strings.Replace(good, `"cert"`, `"certificate"`, 1),
		"over the size bound": `{"pad":"` + strings.Repeat("a", MaxBody) + `",` + inner + `}`,
		"null":                `null`,
		"unterminated object": `{` + inner,
		"key without value":   `{"x"}`,
	}
	for name, body := range cases {
		if _, err := ParseAnswer([]byte(body)); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", name, err)
		}
	}
	// Unknown fields of any name that is not a known one in another case
	// are fine, before or after the known ones.
	if _, err := ParseAnswer([]byte(`{"Certs":{"a":1},` + inner + `,"zz":[null]}`)); err != nil {
		t.Errorf("unknown fields around the known ones: %v", err)
	}
}

func FuzzParseAnswer(f *testing.F) {
	if b, err := os.ReadFile("testdata/answer-newer-server.json"); err == nil {
		f.Add(b)
	}
	_, _, cert, ca := testMaterial(f)
	f.Add(EncodeResponse(cert, ca))
	f.Add([]byte(`{"cert":"","ca":"","x":{"y":[1,2,{}]}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := ParseAnswer(b)
		if err != nil {
			if a != nil {
				t.Fatal("an answer with an error")
			}
			return
		}
		if _, err := pki.ParseCertPEM(a.CertPEM); err != nil {
			t.Fatal("accepted an answer without a certificate")
		}
		if _, err := pki.ParseCertPEM(a.CAPEM); err != nil {
			t.Fatal("accepted an answer without a CA certificate")
		}
	})
}
