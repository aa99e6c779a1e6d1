package crypto

import (
	"bytes"
	"encoding/hex"
	"errors"
	"testing"
)

var ciphers = []Cipher{AES256GCM, ChaCha20Poly1305}

func TestCipherNames(t *testing.T) {
	for _, c := range ciphers {
		got, err := ParseCipher(c.String())
		if err != nil || got != c || !c.Valid() {
			t.Errorf("ParseCipher(%q) = %v, %v", c.String(), got, err)
		}
	}
	if c, err := ParseCipher(""); err != nil || c != AES256GCM {
		t.Errorf("default cipher = %v, %v", c, err)
	}
	if _, err := ParseCipher("rot13"); err == nil {
		t.Error("unknown cipher accepted")
	}
	for _, c := range []Cipher{0, 3, 255} {
		if c.Valid() {
			t.Errorf("cipher %d valid", c)
		}
		if _, err := NewAEAD(c, Key{}); err == nil {
			t.Errorf("NewAEAD(%d) succeeded", c)
		}
	}
}

func TestSealOpen(t *testing.T) {
	for _, c := range ciphers {
		t.Run(c.String(), func(t *testing.T) {
			k, err := NewRandomKey()
			if err != nil {
				t.Fatal(err)
			}
			a, err := NewAEAD(c, k)
			if err != nil {
				t.Fatal(err)
			}
			pt := []byte("attack at dawn")
			aad := []byte("context")
			s1 := Seal(a, []byte("prefix"), pt, aad)
			if !bytes.HasPrefix(s1, []byte("prefix")) || len(s1) != len("prefix")+len(pt)+Overhead {
				t.Fatalf("Seal output has length %d", len(s1))
			}
			s1 = s1[len("prefix"):]
			s2 := Seal(a, nil, pt, aad)
			if bytes.Equal(s1[:NonceSize], s2[:NonceSize]) {
				t.Fatal("two seals share a nonce")
			}
			got, err := Open(a, nil, s1, aad)
			if err != nil || !bytes.Equal(got, pt) {
				t.Fatalf("Open = %q, %v", got, err)
			}
			if _, err := Open(a, nil, s1, []byte("contexT")); !errors.Is(err, ErrAuthFailed) {
				t.Errorf("other AAD: %v", err)
			}
			for i := range s1 {
				bad := append([]byte(nil), s1...)
				bad[i] ^= 0x80
				if _, err := Open(a, nil, bad, aad); !errors.Is(err, ErrAuthFailed) {
					t.Fatalf("byte %d flipped: %v", i, err)
				}
			}
			for _, n := range []int{0, 1, Overhead - 1, Overhead, len(s1) - 1} {
				if _, err := Open(a, nil, s1[:n], aad); !errors.Is(err, ErrAuthFailed) {
					t.Errorf("truncated to %d: %v", n, err)
				}
			}
			k2, _ := NewRandomKey()
			a2, _ := NewAEAD(c, k2)
			if _, err := Open(a2, nil, s1, aad); !errors.Is(err, ErrAuthFailed) {
				t.Errorf("wrong key: %v", err)
			}
		})
	}
}

func TestCiphersAreNotInterchangeable(t *testing.T) {
	k, _ := NewRandomKey()
	gcm, _ := NewAEAD(AES256GCM, k)
	cc, _ := NewAEAD(ChaCha20Poly1305, k)
	s := Seal(gcm, nil, []byte("x"), nil)
	if _, err := Open(cc, nil, s, nil); !errors.Is(err, ErrAuthFailed) {
		t.Errorf("AES-GCM ciphertext opened with ChaCha20-Poly1305: %v", err)
	}
}

// RFC 5869 test case 1; DeriveKey returns the first 32 bytes of OKM.
func TestDeriveKeyRFC5869(t *testing.T) {
	ikm := bytes.Repeat([]byte{0x0b}, 22)
	salt, _ := hex.DecodeString("000102030405060708090a0b0c")
	info, _ := hex.DecodeString("f0f1f2f3f4f5f6f7f8f9")
	want, _ := hex.DecodeString("3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf")
	got := DeriveKey(ikm, salt, string(info))
	if !bytes.Equal(got[:], want) {
		t.Fatalf("DeriveKey = %x, want %x", got, want)
	}
	if DeriveKey(ikm, salt, "a") == DeriveKey(ikm, salt, "b") {
		t.Error("info does not separate keys")
	}
}

func TestKeys(t *testing.T) {
	a, err := NewRandomKey()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := NewRandomKey()
	if a == b || a == (Key{}) {
		t.Fatal("random keys are not random")
	}
	if !a.Equal(a) || a.Equal(b) {
		t.Error("Key.Equal is wrong")
	}
	r, err := RandomBytes(17)
	if err != nil || len(r) != 17 {
		t.Fatalf("RandomBytes = %d bytes, %v", len(r), err)
	}
}
