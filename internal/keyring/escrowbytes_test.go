package keyring

import (
	"bytes"
	"errors"
	"testing"
)

// The raw form round-trips with age's own "age1…" encoding: a recipient
// made from the bytes of an age-generated key is that key.
func TestEscrowRecipientBytesRoundTrip(t *testing.T) {
	for range 20 {
		id, err := GenerateEscrowIdentity()
		if err != nil {
			t.Fatal(err)
		}
		r := id.Recipient()
		raw := r.Bytes()
		if len(raw) != EscrowPublicKeySize {
			t.Fatalf("Bytes: %d bytes", len(raw))
		}
		back, err := EscrowRecipientFromBytes(raw)
		if err != nil {
			t.Fatal(err)
		}
		if back.String() != r.String() {
			t.Fatalf("round trip %s, want %s", back, r)
		}
	}
}

// A known vector: age's own test recipient and its X25519 bytes.
func TestEscrowRecipientFromBytesVector(t *testing.T) {
	const s = "age1zvkyg2lqzraa2lnjvqej32nkuu0ues2s82hzrye869xeexvn73equnujwj"
	r, err := ParseEscrowRecipient(s)
	if err != nil {
		t.Fatal(err)
	}
	raw := r.Bytes()
	back, err := EscrowRecipientFromBytes(raw)
	if err != nil || back.String() != s {
		t.Fatalf("got %v, %v; want %s", back, err, s)
	}
	if bytes.Equal(raw, make([]byte, 32)) {
		t.Fatal("zero bytes")
	}
}

func TestEscrowRecipientFromBytesRefusesBadLength(t *testing.T) {
	for _, n := range []int{0, 31, 33, 64} {
		if _, err := EscrowRecipientFromBytes(make([]byte, n)); !errors.Is(err, ErrBadEscrowKey) {
			t.Errorf("%d bytes: %v, want ErrBadEscrowKey", n, err)
		}
	}
	if (EscrowRecipient{}).Bytes() != nil {
		t.Error("zero recipient has bytes")
	}
}
