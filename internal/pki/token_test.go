package pki_test

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"testing"
	"testing/quick"
	"time"

	"github.com/coffer-backup/coffer/internal/pki"
	"github.com/coffer-backup/coffer/internal/pki/pkitest"
)

var now = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func TestMemoryTokenStoreContract(t *testing.T) {
	pkitest.TokenStore(t, func(*testing.T) pki.TokenStore { return new(pki.MemoryTokenStore) })
}

func TestTokenRoundTrip(t *testing.T) {
	fp := [32]byte{1, 2, 3}
	tok, err := pki.NewToken("host-1.example", fp)
	if err != nil {
		t.Fatal(err)
	}
	s, err := tok.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(s, "cfr1.") {
		t.Fatalf("token %q lacks prefix", s)
	}
	got, err := pki.ParseToken(s)
	if err != nil {
		t.Fatal(err)
	}
	if *got != *tok {
		t.Fatal("round trip changed the token")
	}
	secret := base64.RawURLEncoding.EncodeToString(tok.Secret[:])
	for _, out := range []string{tok.String(), fmt.Sprintf("%v %+v %#v %s", tok, tok, tok, tok)} {
		if strings.Contains(out, s) || strings.Contains(out, secret[:10]) || strings.Contains(out, fmt.Sprint(tok.Secret[0], " ", tok.Secret[1])) {
			t.Fatalf("formatted token leaks its secret: %s", out)
		}
	}
	other, _ := pki.NewToken("host-1.example", fp)
	if other.Secret == tok.Secret {
		t.Fatal("two tokens share a secret")
	}
}

func TestTokenRoundTripProperty(t *testing.T) {
	f := func(nameSeed []byte, fp, secret [32]byte) bool {
		name := "c"
		for _, b := range nameSeed {
			if len(name) == pki.MaxClientName {
				break
			}
			name += string("abcdefghijklmnopqrstuvwxyz0123456789-_"[int(b)%38])
		}
		tok := &pki.Token{ClientName: name, CAFingerprint: fp, Secret: secret}
		enc, err := tok.Encode()
		if err != nil {
			return false
		}
		got, err := pki.ParseToken(enc)
		return err == nil && *got == *tok
	}
	if err := quick.Check(f, nil); err != nil {
		t.Fatal(err)
	}
}

func encodeRaw(b []byte) string { return "cfr1." + base64.RawURLEncoding.EncodeToString(b) }

func rawToken(version byte, nameLen byte, name string, tail int) []byte {
	b := []byte{version, nameLen}
	b = append(b, name...)
	return append(b, make([]byte, tail)...)
}

func TestParseTokenStrict(t *testing.T) {
	good, _ := pki.NewToken("alice", [32]byte{9})
	gs, _ := good.Encode()
	bad := map[string]string{
		"empty":            "",
		"no prefix":        strings.TrimPrefix(gs, "cfr1."),
		"wrong prefix":     "cfr2." + strings.TrimPrefix(gs, "cfr1."),
		"upper prefix":     "CFR1." + strings.TrimPrefix(gs, "cfr1."),
		"padding":          gs + "=",
		"std alphabet":     "cfr1." + base64.StdEncoding.EncodeToString(rawToken(1, 5, "al+ce", 64)),
		"whitespace":       gs + "\n",
		"inner space":      gs[:10] + " " + gs[10:],
		"version 0":        encodeRaw(rawToken(0, 5, "alice", 64)),
		"version 2":        encodeRaw(rawToken(2, 5, "alice", 64)),
		"short":            encodeRaw(rawToken(1, 5, "alice", 63)),
		"long":             encodeRaw(rawToken(1, 5, "alice", 65)),
		"len mismatch":     encodeRaw(rawToken(1, 6, "alice", 64)),
		"empty name":       encodeRaw(rawToken(1, 0, "", 64)),
		"bad name":         encodeRaw(rawToken(1, 5, "../..", 64)),
		"upper name":       encodeRaw(rawToken(1, 5, "Alice", 64)),
		"nul name":         encodeRaw(rawToken(1, 5, "al\x00ce", 64)),
		"only header":      encodeRaw([]byte{1}),
		"too long":         "cfr1." + strings.Repeat("A", 400),
		"noncanonical pad": gs[:len(gs)-1] + string(flipLowBits(gs[len(gs)-1])),
	}
	for name, s := range bad {
		if _, err := pki.ParseToken(s); !errors.Is(err, pki.ErrTokenMalformed) {
			t.Errorf("%s: ParseToken(%q) = %v, want ErrTokenMalformed", name, s, err)
		}
	}
}

// flipLowBits returns a base64url character that differs from c only in
// bits a canonical encoder leaves zero in the last character.
func flipLowBits(c byte) byte {
	const alpha = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	i := strings.IndexByte(alpha, c)
	return alpha[i^1]
}

func FuzzParseToken(f *testing.F) {
	good, _ := pki.NewToken("alice", [32]byte{9})
	gs, _ := good.Encode()
	f.Add(gs)
	good.User = true
	us, _ := good.Encode()
	f.Add(us)
	f.Add("cfr1.")
	f.Add("cfr1.AQVhbGljZQ")
	f.Add(encodeRaw(rawToken(1, 5, "alice", 64)))
	f.Add(encodeRaw(rawToken(1, 200, "alice", 64)))
	f.Fuzz(func(t *testing.T, s string) {
		tok, err := pki.ParseToken(s)
		if err != nil {
			if !errors.Is(err, pki.ErrTokenMalformed) {
				t.Fatalf("error %v does not wrap ErrTokenMalformed", err)
			}
			return
		}
		if err := pki.ValidateClientName(tok.ClientName); err != nil {
			t.Fatalf("accepted invalid name %q", tok.ClientName)
		}
		// Strict: the only accepted spelling is the canonical one.
		if enc, err := tok.Encode(); err != nil || enc != s {
			t.Fatalf("accepted %q, which encodes back as %q", s, enc)
		}
	})
}

func TestEnroll(t *testing.T) {
	ctx := context.Background()
	ca, err := pki.NewCA("test", now)
	if err != nil {
		t.Fatal(err)
	}
	store := new(pki.MemoryTokenStore)
	tok, err := ca.IssueToken(ctx, store, "alice", 15*time.Minute, now)
	if err != nil {
		t.Fatal(err)
	}
	if tok.CAFingerprint != ca.Fingerprint() {
		t.Fatal("token lacks the CA fingerprint")
	}
	enc, err := tok.Encode()
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := pki.ParseToken(enc)
	if err != nil {
		t.Fatal(err)
	}
	key, _ := pki.NewClientKey()
	csr, _ := pki.NewCSR(key, "alice")

	// A broken CSR is refused without spending the token.
	if _, err := ca.Enroll(ctx, store, parsed, []byte("junk"), time.Hour, now); !errors.Is(err, pki.ErrBadCSR) {
		t.Fatalf("junk CSR: %v", err)
	}
	// A token for another CA is refused.
	otherCA, _ := pki.NewCA("other", now)
	if _, err := otherCA.Enroll(ctx, store, parsed, csr, time.Hour, now); !errors.Is(err, pki.ErrTokenWrongCA) {
		t.Fatalf("other CA: %v", err)
	}
	// A forged secret is unknown.
	forged := *parsed
	forged.Secret[0] ^= 1
	if _, err := ca.Enroll(ctx, store, &forged, csr, time.Hour, now); !errors.Is(err, pki.ErrTokenUnknown) {
		t.Fatalf("forged: %v", err)
	}
	e, err := ca.Enroll(ctx, store, parsed, csr, time.Hour, now.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(e.CertDER)
	if name, _ := pki.ClientName(c); name != "alice" || e.ClientName != "alice" || c.SerialNumber.Cmp(e.Serial) != 0 {
		t.Fatalf("enrolled %q", name)
	}
	if _, err := ca.Enroll(ctx, store, parsed, csr, time.Hour, now.Add(2*time.Minute)); !errors.Is(err, pki.ErrTokenUsed) {
		t.Fatalf("reuse: %v", err)
	}

	// Expiry.
	tok2, _ := ca.IssueToken(ctx, store, "bob", 15*time.Minute, now)
	if _, err := ca.Enroll(ctx, store, tok2, csr, time.Hour, now.Add(15*time.Minute)); !errors.Is(err, pki.ErrTokenExpired) {
		t.Fatalf("expired: %v", err)
	}
	// A token whose embedded name was edited still names the record's
	// client, never the edited one.
	tok3, _ := ca.IssueToken(ctx, store, "carol", 15*time.Minute, now)
	edited := *tok3
	edited.ClientName = "admin"
	if _, err := ca.Enroll(ctx, store, &edited, csr, time.Hour, now); !errors.Is(err, pki.ErrTokenUnknown) {
		t.Fatalf("edited name: %v", err)
	}
	// ... and the genuine token was not burnt by it.
	if e, err := ca.Enroll(ctx, store, tok3, csr, time.Hour, now); err != nil || e.ClientName != "carol" {
		t.Fatalf("genuine token after an edited copy: %v", err)
	}
	if _, err := (&pki.Token{ClientName: "../x"}).Encode(); err == nil {
		t.Fatal("encoded a token with an invalid name")
	}
	for _, ttl := range []time.Duration{0, -time.Second, pki.MaxTokenTTL + time.Second} {
		if _, err := ca.IssueToken(ctx, store, "dave", ttl, now); err == nil {
			t.Fatalf("ttl %v accepted", ttl)
		}
	}
}

// A person's token (version 2, kind user) round-trips, yields a user
// certificate (urn:coffer:user:NAME) and cannot be turned into a host's
// token for the same name, nor the other way round.
func TestUserToken(t *testing.T) {
	ctx := context.Background()
	ca, err := pki.NewCA("test", now)
	if err != nil {
		t.Fatal(err)
	}
	store := new(pki.MemoryTokenStore)
	tok, err := ca.IssueUserToken(ctx, store, "alice", 15*time.Minute, now)
	if err != nil {
		t.Fatal(err)
	}
	enc, err := tok.Encode()
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := pki.ParseToken(enc)
	if err != nil || !parsed.User || parsed.ClientName != "alice" || parsed.Secret != tok.Secret {
		t.Fatalf("parse %s: %+v %v", enc, parsed, err)
	}
	if strings.Contains(parsed.String(), enc[10:]) {
		t.Fatal("String shows the secret")
	}
	key, _ := pki.NewClientKey()
	csr, _ := pki.NewCSR(key, "alice")
	asHost := *parsed
	asHost.User = false
	if _, err := ca.Enroll(ctx, store, &asHost, csr, time.Hour, now); !errors.Is(err, pki.ErrTokenUnknown) {
		t.Fatalf("user token redeemed as a host's: %v", err)
	}
	e, err := ca.Enroll(ctx, store, parsed, csr, time.Hour, now)
	if err != nil || !e.User {
		t.Fatalf("enroll: %+v %v", e, err)
	}
	c, _ := x509.ParseCertificate(e.CertDER)
	if kind, name, err := pki.PrincipalOf(c); err != nil || kind != pki.KindUser || name != "alice" {
		t.Fatalf("principal %s %s %v", kind, name, err)
	}
	if _, err := pki.ClientName(c); err == nil {
		t.Fatal("a user certificate passes as a client's")
	}
	if _, err := pki.UserName(c); err != nil {
		t.Fatal(err)
	}
	// A host's token cannot be redeemed as a person's.
	htok, _ := ca.IssueToken(ctx, store, "bob", 15*time.Minute, now)
	asUser := *htok
	asUser.User = true
	if _, err := ca.Enroll(ctx, store, &asUser, csr, time.Hour, now); !errors.Is(err, pki.ErrTokenUnknown) {
		t.Fatalf("host token redeemed as a user's: %v", err)
	}
	// Unknown kinds are malformed.
	b, _ := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(enc, pki.TokenPrefix))
	b[1] = 7
	if _, err := pki.ParseToken(pki.TokenPrefix + base64.RawURLEncoding.EncodeToString(b)); !errors.Is(err, pki.ErrTokenMalformed) {
		t.Fatalf("kind 7: %v", err)
	}
}
