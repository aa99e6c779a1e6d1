package keyring

import (
	"bytes"
	"testing"
	"time"

	"github.com/coffer-backup/coffer/internal/crypto"
)

// FuzzParseSlot: untrusted slot files never panic, and whatever parses
// re-encodes to a slot that parses to the same fields.
func FuzzParseSlot(f *testing.F) {
	m, err := NewMaster(MasterSecret{1, 2, 3}, testRepoID(0x5a))
	if err != nil {
		f.Fatal(err)
	}
	ps, err := NewPassphraseSlot(m, []byte("pw"), crypto.AES256GCM, cheapKDF, testInfo)
	if err != nil {
		f.Fatal(err)
	}
	pb, _ := ps.Marshal()
	rs, err := NewRecoverySlot(m, RecoveryKey{9}, crypto.ChaCha20Poly1305, testInfo)
	if err != nil {
		f.Fatal(err)
	}
	rb, _ := rs.Marshal()
	es, err := NewEscrowSlot(m, fuzzEscrowIdentity(f).Recipient(), testInfo)
	if err != nil {
		f.Fatal(err)
	}
	eb, _ := es.Marshal()
	f.Add(ps.ID, pb)
	f.Add(rs.ID, rb)
	f.Add(es.ID, eb)
	f.Add(ps.ID, []byte(`{"version":1,"version":1}`))
	f.Add(ps.ID, []byte(`{"kdf":{"memory_kib":4294967295}}`))
	f.Add("x", []byte("{}"))
	f.Fuzz(func(t *testing.T, id string, data []byte) {
		s, err := ParseSlot(id, data)
		if err != nil {
			return
		}
		out, err := s.Marshal()
		if err != nil {
			t.Fatalf("parsed slot does not marshal: %v", err)
		}
		s2, err := ParseSlot(id, out)
		if err != nil {
			t.Fatalf("re-encoded slot does not parse: %v", err)
		}
		if s.Kind != s2.Kind || s.Host != s2.Host || s.User != s2.User || !s.Created.Equal(s2.Created) ||
			!bytes.Equal(s.RepoID, s2.RepoID) || s.Cipher != s2.Cipher || s.KDF != s2.KDF || s.Recipient != s2.Recipient ||
			s.salt != s2.salt || !bytes.Equal(s.wrapped, s2.wrapped) || !bytes.Equal(s.aad(), s2.aad()) {
			t.Fatal("slot changed across a re-encode")
		}
		if err := s.KDF.Validate(); s.Kind == SlotPassphrase && err != nil {
			t.Fatalf("parsed slot has out-of-bounds KDF params: %v", err)
		}
	})
}

// FuzzParseRecoveryKey: no input panics; whatever parses formats back to
// a string that parses to the same key.
func FuzzParseRecoveryKey(f *testing.F) {
	f.Add(RecoveryKey{}.String())
	f.Add(RecoveryKey{0xff, 1, 2}.String())
	f.Add("cfrk 00000 00000")
	f.Add("")
	f.Add("CFRK-" + string(bytes.Repeat([]byte("Z"), 55)))
	f.Fuzz(func(t *testing.T, s string) {
		rk, err := ParseRecoveryKey(s)
		if err != nil {
			return
		}
		again, err := ParseRecoveryKey(rk.String())
		if err != nil || again != rk {
			t.Fatalf("round trip failed: %v", err)
		}
	})
}

// FuzzOpenTerm: a term object from storage never panics the client, and
// anything that opens has the number its name says.
func FuzzOpenTerm(f *testing.F) {
	m, err := NewMaster(MasterSecret{4, 5, 6}, testRepoID(0x6b))
	if err != nil {
		f.Fatal(err)
	}
	term := Term{Number: 1, Created: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC), Key: crypto.Key{7}}
	data, err := SealTerm(m, crypto.AES256GCM, term)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(TermName(1), data)
	f.Add(TermName(2), data)
	f.Add("00000000", data[:crypto.HeaderSize])
	f.Add("zz", []byte("CFR1"))
	f.Fuzz(func(t *testing.T, name string, data []byte) {
		got, err := OpenTerm(m, name, data)
		if err != nil {
			return
		}
		if TermName(got.Number) != name {
			t.Fatalf("term %d opened under name %q", got.Number, name)
		}
	})
}

// FuzzTermPlaintext: the decrypted JSON is parsed strictly; accepted
// plaintexts re-encode to an equal term.
func FuzzTermPlaintext(f *testing.F) {
	pt, err := marshalTerm(Term{Number: 5, Created: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC), Key: crypto.Key{7}})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(pt)
	f.Add([]byte(`{"version":1,"number":0}`))
	f.Add([]byte(`[[[[`))
	f.Fuzz(func(t *testing.T, pt []byte) {
		term, err := parseTermPlaintext(pt)
		if err != nil {
			return
		}
		if term.Number == KEKTerm || term.Key == (crypto.Key{}) {
			t.Fatal("accepted a reserved number or a zero key")
		}
		out, err := marshalTerm(term)
		if err != nil {
			t.Fatal(err)
		}
		again, err := parseTermPlaintext(out)
		if err != nil || again != term {
			t.Fatalf("re-encode changed the term: %v", err)
		}
	})
}
