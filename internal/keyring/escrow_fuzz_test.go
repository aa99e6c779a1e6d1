package keyring

import (
	"bytes"
	"errors"
	"testing"
	"time"
)

// fuzzEscrowIdentity is a fixed identity, so that fuzz inputs replay.
func fuzzEscrowIdentity(tb testing.TB) *EscrowIdentity {
	tb.Helper()
	id, err := ParseEscrowIdentity([]byte("AGE-SECRET-KEY-1GFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPQ4EGAEX\n"))
	if err != nil {
		tb.Fatal(err)
	}
	return id
}

// FuzzOpenEscrowSlot: whatever age file an escrow slot carries, parsing
// and opening it with the right identity never panic, and a slot that
// opens yields exactly the master it was made for.
func FuzzOpenEscrowSlot(f *testing.F) {
	m, err := NewMaster(MasterSecret{7, 7, 7}, testRepoID(0x3c))
	if err != nil {
		f.Fatal(err)
	}
	id := fuzzEscrowIdentity(f)
	s, err := NewEscrowSlot(m, id.Recipient(), testInfo)
	if err != nil {
		f.Fatal(err)
	}
	if got, _, err := UnlockWithOptions([]*Slot{s}, nil, UnlockOptions{Escrow: id}); err != nil || !got.Equal(m) {
		f.Fatalf("the seed slot does not open: %v", err)
	}
	f.Add(s.wrapped)
	f.Add(s.wrapped[:len(s.wrapped)-1])
	f.Add([]byte(ageHeaderMagic + "-> X25519 \n--- \n"))
	f.Fuzz(func(t *testing.T, wrapped []byte) {
		p := *s
		p.wrapped = wrapped
		if p.checkEscrowWrapped() != nil {
			return
		}
		got, _, err := UnlockWithOptions([]*Slot{&p}, nil, UnlockOptions{Escrow: id})
		if err == nil && !got.Equal(m) {
			t.Fatal("an escrow slot opened to another master")
		}
		if err != nil && !errors.Is(err, ErrWrongPassword) {
			t.Fatalf("failure does not match ErrWrongPassword: %v", err)
		}
	})
}

// FuzzParseEscrowKeyFiles: identity and public-key files never panic the
// parsers, and what parses writes back to a file that parses to the same
// key.
func FuzzParseEscrowKeyFiles(f *testing.F) {
	id := fuzzEscrowIdentity(f)
	f.Add(id.MarshalFile(time.Unix(0, 0)))
	f.Add([]byte(id.Recipient().String() + "\n"))
	f.Add([]byte("# x\n\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		if i, err := ParseEscrowIdentity(data); err == nil {
			again, err := ParseEscrowIdentity(i.MarshalFile(time.Unix(0, 0)))
			if err != nil || again.Recipient().String() != i.Recipient().String() {
				t.Fatalf("identity round trip: %v", err)
			}
		}
		if r, err := ParseEscrowRecipientFile(data); err == nil {
			again, err := ParseEscrowRecipient(r.String())
			if err != nil || again.String() != r.String() || !bytes.HasPrefix([]byte(r.String()), []byte("age1")) {
				t.Fatalf("recipient round trip: %v", err)
			}
		}
	})
}
