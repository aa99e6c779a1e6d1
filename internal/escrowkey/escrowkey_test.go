package escrowkey

import (
	"bytes"
	"errors"
	"testing"

	"filippo.io/age"
)

// Keys age makes decode to 32 bytes that encode back to the same text,
// which age parses again; an edited key is refused.
func TestEscrowKeyRoundTrip(t *testing.T) {
	t.Parallel()
	for range 20 {
		id, err := age.GenerateX25519Identity()
		if err != nil {
			t.Fatal(err)
		}
		s := id.Recipient().String()
		key, err := Decode(s)
		if err != nil || len(key) != 32 {
			t.Fatalf("decode %s: %v (%d bytes)", s, err, len(key))
		}
		back, err := Encode(key)
		if err != nil || back != s {
			t.Fatalf("encode: %q %v, want %q", back, err, s)
		}
		if _, err := age.ParseX25519Recipient(back); err != nil {
			t.Fatal(err)
		}
		edited := []byte(s)
		edited[10] ^= 1
		if bytes.Equal(edited, []byte(s)) {
			t.Fatal("no edit")
		}
		if _, err := Decode(string(edited)); !errors.Is(err, ErrInvalid) {
			t.Fatalf("edited key: %v", err)
		}
		if _, err := Decode(id.String()); !errors.Is(err, ErrInvalid) {
			t.Fatalf("private key accepted: %v", err)
		}
	}
}

func FuzzDecode(f *testing.F) {
	f.Add("age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p")
	f.Add("age1")
	f.Fuzz(func(t *testing.T, s string) {
		key, err := Decode(s)
		if err != nil {
			return
		}
		back, err := Encode(key)
		if err != nil || back != s {
			t.Fatalf("%q decoded but encodes to %q (%v)", s, back, err)
		}
	})
}
