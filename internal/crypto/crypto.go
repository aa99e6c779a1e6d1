// Package crypto seals and opens coffer's stored objects: AEAD ciphers
// (AES-256-GCM, ChaCha20-Poly1305), HKDF subkeys and the object envelope.
//
// Nothing here invents a primitive: it composes crypto/aes, crypto/cipher,
// golang.org/x/crypto/chacha20poly1305 and HKDF-SHA-256 as docs/format.md says.
package crypto

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"

	"golang.org/x/crypto/chacha20poly1305"
)

// KeySize is the size of every symmetric key in coffer.
const KeySize = 32

// NonceSize is the nonce size of both supported AEADs.
const NonceSize = 12

// Overhead is what Seal adds to a plaintext: the nonce and the tag.
const Overhead = NonceSize + 16

// ErrAuthFailed is returned when a ciphertext does not authenticate: the
// wrong key, a flipped bit, a truncated object or an object moved elsewhere.
var ErrAuthFailed = errors.New("ciphertext authentication failed")

// Cipher names an AEAD construction. Its numeric value is stored on disk.
type Cipher uint8

// The supported ciphers. Values are part of the on-disk format.
const (
	AES256GCM        Cipher = 1
	ChaCha20Poly1305 Cipher = 2
)

// String returns the name used on the command line and in config files.
func (c Cipher) String() string {
	switch c {
	case AES256GCM:
		return "aes-256-gcm"
	case ChaCha20Poly1305:
		return "chacha20-poly1305"
	}
	return fmt.Sprintf("cipher(%d)", uint8(c))
}

// ParseCipher maps a command-line name to a Cipher.
func ParseCipher(s string) (Cipher, error) {
	switch s {
	case "", "aes-256-gcm", "aes", "aes256-gcm":
		return AES256GCM, nil
	case "chacha20-poly1305", "chacha20", "chacha":
		return ChaCha20Poly1305, nil
	}
	return 0, fmt.Errorf("unknown cipher %q (want aes-256-gcm or chacha20-poly1305)", s)
}

// Valid reports whether c is a cipher this build understands.
func (c Cipher) Valid() bool { return c == AES256GCM || c == ChaCha20Poly1305 }

// Key is a 256-bit symmetric key.
type Key [KeySize]byte

// NewRandomKey returns a key from the operating system's CSPRNG.
func NewRandomKey() (Key, error) {
	var k Key
	if _, err := rand.Read(k[:]); err != nil {
		return Key{}, fmt.Errorf("read random key: %w", err)
	}
	return k, nil
}

// Equal compares two keys in constant time.
func (k Key) Equal(o Key) bool { return subtle.ConstantTimeCompare(k[:], o[:]) == 1 }

// DeriveKey derives a subkey with HKDF-SHA-256 (RFC 5869).
// info must name the purpose, e.g. "coffer/v1/blob-id", so that keys for
// different purposes are independent.
func DeriveKey(secret, salt []byte, info string) Key {
	out, err := hkdf.Key(sha256.New, secret, salt, info, KeySize)
	if err != nil {
		// Only possible when the requested length exceeds 255*32 bytes.
		panic("hkdf: " + err.Error())
	}
	var k Key
	copy(k[:], out)
	return k
}

// NewAEAD returns the AEAD for c keyed with key.
func NewAEAD(c Cipher, key Key) (cipher.AEAD, error) {
	switch c {
	case AES256GCM:
		b, err := aes.NewCipher(key[:])
		if err != nil {
			return nil, err
		}
		return cipher.NewGCM(b)
	case ChaCha20Poly1305:
		return chacha20poly1305.New(key[:])
	}
	return nil, fmt.Errorf("unsupported cipher %d", uint8(c))
}

// Seal encrypts plaintext with a fresh random nonce and returns
// nonce || ciphertext || tag, appended to dst.
func Seal(a cipher.AEAD, dst, plaintext, aad []byte) []byte {
	return sealFrom(rand.Reader, a, dst, plaintext, aad)
}

// sealFrom is Seal reading the nonce from rnd: crypto/rand in coffer, a
// fixed reader in the known-answer tests.
func sealFrom(rnd io.Reader, a cipher.AEAD, dst, plaintext, aad []byte) []byte {
	var nonce [NonceSize]byte
	if _, err := io.ReadFull(rnd, nonce[:]); err != nil {
		panic("crypto/rand failed: " + err.Error())
	}
	dst = append(dst, nonce[:]...)
	return a.Seal(dst, nonce[:], plaintext, aad)
}

// Open reverses Seal. It returns ErrAuthFailed for any sealed input that does
// not authenticate under the key and aad, including inputs that are too short.
func Open(a cipher.AEAD, dst, sealed, aad []byte) ([]byte, error) {
	if len(sealed) < Overhead {
		return nil, ErrAuthFailed
	}
	out, err := a.Open(dst, sealed[:NonceSize], sealed[NonceSize:], aad)
	if err != nil {
		return nil, ErrAuthFailed
	}
	return out, nil
}

// RandomBytes returns n bytes from the CSPRNG.
func RandomBytes(n int) ([]byte, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return nil, fmt.Errorf("read random bytes: %w", err)
	}
	return b, nil
}
