package enroll

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/coffer-backup/coffer/internal/pki"
)

func testMaterial(t testing.TB) (tokEncoded, csrPEM string, certDER, caDER []byte) {
	t.Helper()
	ca, err := pki.NewCA("test CA", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	tok, err := pki.NewToken("alice", ca.Fingerprint())
	if err != nil {
		t.Fatal(err)
	}
	enc, err := tok.Encode()
	if err != nil {
		t.Fatal(err)
	}
	key, err := pki.NewClientKey()
	if err != nil {
		t.Fatal(err)
	}
	csr, err := pki.NewCSR(key, "alice")
	if err != nil {
		t.Fatal(err)
	}
	store := &pki.MemoryTokenStore{}
	if _, err := ca.IssueToken(context.Background(), store, "alice", time.Minute, time.Now()); err != nil {
		t.Fatal(err)
	}
	der, _, err := ca.SignClient(csr, "alice", time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return enc, encodeCSR(csr), der, ca.Cert.Raw
}

func TestParseRequest(t *testing.T) {
	tok, csr, _, _ := testMaterial(t)
	good, _ := json.Marshal(Request{Token: tok, CSR: csr})
	gotTok, gotCSR, err := ParseRequest(good)
	if err != nil {
		t.Fatal(err)
	}
	if gotTok.ClientName != "alice" {
		t.Fatalf("token name %q", gotTok.ClientName)
	}
	if _, err := x509.ParseCertificateRequest(gotCSR); err != nil {
		t.Fatalf("CSR: %v", err)
	}
	bad := map[string]string{
		"empty":         ``,
		"array":         `[]`,
		"unknown field": `{"token":"` + tok + `","csr":` + mustJSON(csr) + `,"name":"bob"}`,
		"trailing":      string(good) + `{}`,
		"two csr":       `{"token":"` + tok + `","csr":` + mustJSON(csr+csr) + `}`,
		"no csr":        `{"token":"` + tok + `"}`,
		"cert not csr":  `{"token":"` + tok + `","csr":` + mustJSON(strings.ReplaceAll(csr, "CERTIFICATE REQUEST", "CERTIFICATE")) + `}`,
		"big":           `{"token":"` + strings.Repeat("a", MaxBody) + `"}`,
	}
	for name, body := range bad {
		if _, _, err := ParseRequest([]byte(body)); !errors.Is(err, ErrMalformed) && !errors.Is(err, pki.ErrTokenMalformed) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, _, err := ParseRequest([]byte(`{"token":"cfr1.AAAA","csr":` + mustJSON(csr) + `}`)); !errors.Is(err, pki.ErrTokenMalformed) {
		t.Errorf("bad token: %v", err)
	}
}

func mustJSON(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func TestResponseRoundTrip(t *testing.T) {
	_, _, cert, ca := testMaterial(t)
	certPEM, caPEM, err := ParseResponse(EncodeResponse(cert, ca))
	if err != nil {
		t.Fatal(err)
	}
	if c, err := pki.ParseCertPEM(certPEM); err != nil || string(c.Raw) != string(cert) {
		t.Fatalf("certificate: %v", err)
	}
	if c, err := pki.ParseCertPEM(caPEM); err != nil || string(c.Raw) != string(ca) {
		t.Fatalf("CA: %v", err)
	}
	for _, body := range []string{`{"cert":"x","ca":"y"}`, `{"cert":""}`, `null`, `{"cert":"","ca":"","x":1}`} {
		if _, _, err := ParseResponse([]byte(body)); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v", body, err)
		}
	}
}

func FuzzParseRequest(f *testing.F) {
	tok, csr, _, _ := testMaterial(f)
	good, _ := json.Marshal(Request{Token: tok, CSR: csr})
	f.Add(good)
	f.Add([]byte(`{"token":"cfr1.","csr":""}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		tok, der, err := ParseRequest(b)
		if err != nil {
			if tok != nil || der != nil {
				t.Fatal("results with an error")
			}
			return
		}
		if tok == nil || len(der) == 0 || pki.ValidateClientName(tok.ClientName) != nil {
			t.Fatal("accepted an incomplete request")
		}
	})
}

func FuzzParseRenewRequest(f *testing.F) {
	_, csr, _, _ := testMaterial(f)
	good, _ := json.Marshal(RenewRequest{CSR: csr})
	f.Add(good)
	f.Add([]byte(`{"csr":"-----BEGIN CERTIFICATE REQUEST-----\n-----END CERTIFICATE REQUEST-----\n"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		der, err := ParseRenewRequest(b)
		if err == nil && len(b) > MaxBody {
			t.Fatal("accepted an oversized body")
		}
		if err != nil && der != nil {
			t.Fatal("result with an error")
		}
	})
}

func FuzzParseResponse(f *testing.F) {
	_, _, cert, ca := testMaterial(f)
	f.Add(EncodeResponse(cert, ca))
	f.Add([]byte(`{"cert":"","ca":""}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, a, err := ParseResponse(b)
		if err != nil {
			return
		}
		if _, err := pki.ParseCertPEM(c); err != nil {
			t.Fatal("accepted a response without a certificate")
		}
		if _, err := pki.ParseCertPEM(a); err != nil {
			t.Fatal("accepted a response without a CA certificate")
		}
	})
}
