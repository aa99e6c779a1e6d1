package keyring

import (
	"bytes"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/coffer-backup/coffer/internal/crypto"
	"github.com/coffer-backup/coffer/internal/storage"
)

var t0 = time.Date(2025, 6, 1, 8, 30, 0, 0, time.UTC)

func newTestTerm(t testing.TB, n uint32) Term {
	t.Helper()
	term, err := NewTerm(n, t0)
	if err != nil {
		t.Fatal(err)
	}
	return term
}

func TestTermRoundTrip(t *testing.T) {
	t.Parallel()
	for _, c := range []crypto.Cipher{crypto.AES256GCM, crypto.ChaCha20Poly1305} {
		m := testMaster(t)
		term := newTestTerm(t, 1)
		data, err := SealTerm(m, c, term)
		if err != nil {
			t.Fatal(err)
		}
		h, err := crypto.ParseHeader(data)
		if err != nil || h.Kind != crypto.KindKeyring || h.Term != KEKTerm || h.Cipher != c {
			t.Fatalf("header %+v, %v", h, err)
		}
		got, err := OpenTerm(m, TermName(1), data)
		if err != nil {
			t.Fatal(err)
		}
		if got != term {
			t.Fatalf("OpenTerm = %+v, want %+v", got, term)
		}
	}
}

func TestTermNames(t *testing.T) {
	t.Parallel()
	if TermName(1) != "00000001" || TermName(0xdeadbeef) != "deadbeef" {
		t.Fatal("TermName format changed")
	}
	if h := TermHandle(2); h.Kind != storage.KindKeyring || h.String() != "keyring/00000002" || storage.ValidateHandle(h) != nil {
		t.Fatalf("TermHandle(2) = %v", h)
	}
	for _, n := range []uint32{1, 2, 255, 1 << 31, 0xffffffff} {
		got, err := ParseTermName(TermName(n))
		if err != nil || got != n {
			t.Errorf("ParseTermName(TermName(%d)) = %d, %v", n, got, err)
		}
	}
	for _, bad := range []string{"", "1", "00000000", "0000001", "000000001", "0000000G", "DEADBEEF", "-0000001", " 0000001"} {
		if _, err := ParseTermName(bad); !errors.Is(err, ErrInvalidTerm) {
			t.Errorf("ParseTermName(%q) = %v", bad, err)
		}
	}
}

func TestTermObjectBoundToNameRepoAndKey(t *testing.T) {
	t.Parallel()
	m := testMaster(t)
	data, err := SealTerm(m, crypto.AES256GCM, newTestTerm(t, 3))
	if err != nil {
		t.Fatal(err)
	}
	// Renamed to another term: the name is in the AAD.
	if _, err := OpenTerm(m, TermName(4), data); !errors.Is(err, crypto.ErrAuthFailed) {
		t.Errorf("renamed term: %v", err)
	}
	// Another repository's master, or the same secret bound to another ID.
	if _, err := OpenTerm(testMaster(t), TermName(3), data); !errors.Is(err, crypto.ErrAuthFailed) {
		t.Errorf("other master: %v", err)
	}
	same, _ := NewMaster(m.secret, testRepoID(0xcc))
	if _, err := OpenTerm(same, TermName(3), data); !errors.Is(err, crypto.ErrAuthFailed) {
		t.Errorf("other repository ID: %v", err)
	}
	// Any flipped bit.
	for i := range data {
		bad := append([]byte(nil), data...)
		bad[i] ^= 0x10
		if _, err := OpenTerm(m, TermName(3), bad); err == nil {
			t.Fatalf("bit flipped in byte %d: opened", i)
		}
	}
	if _, err := OpenTerm(m, TermName(3), data); err != nil {
		t.Fatal(err)
	}
}

func TestTermNumberMustMatchName(t *testing.T) {
	t.Parallel()
	m := testMaster(t)
	// A validly sealed object at keyring/00000002 whose plaintext says 3:
	// only a buggy or malicious key holder could write it.
	pt, err := marshalTerm(newTestTerm(t, 3))
	if err != nil {
		t.Fatal(err)
	}
	data, err := crypto.SealObject(crypto.KindKeyring, crypto.AES256GCM, KEKTerm, m.KEK(), m.RepoID(), "keyring/00000002", pt)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := OpenTerm(m, TermName(2), data); !errors.Is(err, ErrInvalidTerm) {
		t.Fatalf("mismatched number: %v", err)
	}
}

func TestTermMustBeSealedUnderKEK(t *testing.T) {
	t.Parallel()
	m := testMaster(t)
	pt, _ := marshalTerm(newTestTerm(t, 1))
	// Header names term 1 instead of 0: refused before any decryption.
	data, err := crypto.SealObject(crypto.KindKeyring, crypto.AES256GCM, 1, m.KEK(), m.RepoID(), "keyring/00000001", pt)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := OpenTerm(m, TermName(1), data); !errors.Is(err, ErrUnknownTerm) {
		t.Fatalf("term object under term 1: %v", err)
	}
	// Another kind sealed under the KEK at the same name.
	data, _ = crypto.SealObject(crypto.KindConfig, crypto.AES256GCM, 0, m.KEK(), m.RepoID(), "keyring/00000001", pt)
	if _, err := OpenTerm(m, TermName(1), data); !errors.Is(err, crypto.ErrAuthFailed) {
		t.Fatalf("config-kind object as term: %v", err)
	}
}

func TestTermPlaintextStrict(t *testing.T) {
	t.Parallel()
	key := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{1}, 32))
	zeroKey := base64.StdEncoding.EncodeToString(make([]byte, 32))
	good := `{"version":1,"number":1,"created":"2025-06-01T08:30:00Z","key":"` + key + `"}`
	if _, err := parseTermPlaintext([]byte(good)); err != nil {
		t.Fatalf("good plaintext rejected: %v", err)
	}
	for name, bad := range map[string]string{
		"version 2":   strings.Replace(good, `"version":1`, `"version":2`, 1),
		"number 0":    strings.Replace(good, `"number":1`, `"number":0`, 1),
		"number huge": strings.Replace(good, `"number":1`, `"number":4294967296`, 1),
		"extra field": strings.Replace(good, `{`, `{"x":1,`, 1),
		"duplicate":   strings.Replace(good, `{`, `{"number":2,`, 1),
		"short key":   strings.Replace(good, key, "AAAA", 1),
		"zero key":    strings.Replace(good, key, zeroKey, 1),
		"time":        strings.Replace(good, "08:30:00Z", "08:30:00+00:00", 1),
		"trailing":    good + "x",
		"key case":    strings.Replace(good, `"number"`, `"Number"`, 1),
		"kelvin key":  strings.Replace(good, `"key"`, `"\u212aey"`, 1),
		"year 0":      strings.Replace(good, "2025-06-01", "0000-06-01", 1),
		"not json":    "key=1",
	} {
		if _, err := parseTermPlaintext([]byte(bad)); err == nil {
			t.Errorf("%s: accepted %s", name, bad)
		}
	}
}

func TestSealTermRefusesBadTerms(t *testing.T) {
	t.Parallel()
	m := testMaster(t)
	if _, err := SealTerm(m, crypto.AES256GCM, Term{Number: 0, Key: crypto.Key{1}, Created: t0}); !errors.Is(err, ErrInvalidTerm) {
		t.Errorf("term 0: %v", err)
	}
	if _, err := SealTerm(m, crypto.AES256GCM, Term{Number: 1, Created: t0}); !errors.Is(err, ErrInvalidTerm) {
		t.Errorf("zero key: %v", err)
	}
	if _, err := NewTerm(0, t0); !errors.Is(err, ErrInvalidTerm) {
		t.Errorf("NewTerm(0): %v", err)
	}
}

func TestRing(t *testing.T) {
	t.Parallel()
	m := testMaster(t)
	t1, t2 := newTestTerm(t, 1), newTestTerm(t, 2)
	if t1.Key == t2.Key {
		t.Fatal("two terms share a key")
	}
	if _, err := NewRing(m, nil); err == nil {
		t.Fatal("empty ring accepted")
	}
	if _, err := NewRing(m, []Term{t1, t1}); !errors.Is(err, ErrInvalidTerm) {
		t.Fatalf("duplicate term: %v", err)
	}
	r, err := NewRing(m, []Term{t2, t1})
	if err != nil {
		t.Fatal(err)
	}
	if r.Current() != t2 {
		t.Fatalf("Current = %d, want 2", r.Current().Number)
	}
	if k, err := r.Lookup(0); err != nil || k != m.KEK() {
		t.Fatalf("Lookup(0) is not the KEK: %v", err)
	}
	if _, err := r.DataLookup(0); !errors.Is(err, ErrUnknownTerm) {
		t.Fatalf("DataLookup(0): %v", err)
	}
	if k, err := r.Lookup(1); err != nil || k != t1.Key {
		t.Fatalf("Lookup(1): %v", err)
	}
	if _, err := r.Lookup(3); !errors.Is(err, ErrUnknownTerm) {
		t.Fatalf("Lookup(3): %v", err)
	}

	// Rotation: the next term is max+1, old terms stay readable.
	sealed, err := crypto.SealObject(crypto.KindPack, crypto.AES256GCM, r.Current().Number, r.Current().Key, m.RepoID(), "data/ab", []byte("old data"))
	if err != nil {
		t.Fatal(err)
	}
	t3, err := r.NextTerm(t0.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if t3.Number != 3 || t3.Key == t2.Key {
		t.Fatalf("NextTerm = %d", t3.Number)
	}
	if r.Current().Number != 2 {
		t.Fatal("NextTerm changed the ring before Add")
	}
	if err := r.Add(t3); err != nil {
		t.Fatal(err)
	}
	if err := r.Add(t3); err == nil {
		t.Fatal("term added twice")
	}
	if r.Current() != t3 || len(r.Terms()) != 3 || r.Terms()[0] != t1 || r.Terms()[2] != t3 {
		t.Fatal("ring after rotation is wrong")
	}
	pt, err := crypto.OpenObject(crypto.KindPack, r.DataLookup, m.RepoID(), "data/ab", sealed)
	if err != nil || string(pt) != "old data" {
		t.Fatalf("old data after rotation: %v", err)
	}
}

func TestRingTermsExhausted(t *testing.T) {
	t.Parallel()
	m := testMaster(t)
	r, err := NewRing(m, []Term{newTestTerm(t, 0xffffffff)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.NextTerm(t0); err == nil {
		t.Fatal("term number overflowed")
	}
}

func TestOpenRingFailsClosed(t *testing.T) {
	t.Parallel()
	m := testMaster(t)
	var files []TermFile
	for n := uint32(1); n <= 3; n++ {
		data, err := SealTerm(m, crypto.ChaCha20Poly1305, newTestTerm(t, n))
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, TermFile{Name: TermName(n), Data: data})
	}
	r, err := OpenRing(m, files)
	if err != nil {
		t.Fatal(err)
	}
	if r.Current().Number != 3 {
		t.Fatalf("Current = %d", r.Current().Number)
	}
	files[2].Data[len(files[2].Data)-1] ^= 1
	if _, err := OpenRing(m, files); !errors.Is(err, crypto.ErrAuthFailed) {
		t.Fatalf("corrupt newest term: %v", err)
	}
	if _, err := OpenTerm(m, TermName(1), make([]byte, MaxTermObjectSize+1)); !errors.Is(err, ErrInvalidTerm) {
		t.Fatalf("oversized term object: %v", err)
	}
}
