package crypto

import (
	"bytes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// ObjectKind is the type of a stored object; it is written into every
// envelope header and so bound into every AEAD tag of that object.
type ObjectKind uint8

// Object kinds. Values are part of the on-disk format (docs/format.md).
const (
	KindConfig    ObjectKind = 1
	KindKeyring   ObjectKind = 2
	KindPack      ObjectKind = 3
	KindIndex     ObjectKind = 4
	KindSnapshot  ObjectKind = 5
	KindLock      ObjectKind = 6
	KindForget    ObjectKind = 7
	KindCondemned ObjectKind = 8
)

func (k ObjectKind) String() string {
	switch k {
	case KindConfig:
		return "config"
	case KindKeyring:
		return "keyring"
	case KindPack:
		return "pack"
	case KindIndex:
		return "index"
	case KindSnapshot:
		return "snapshot"
	case KindLock:
		return "lock"
	case KindForget:
		return "forget"
	case KindCondemned:
		return "condemned"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Schemes say how an object's file key is obtained.
const (
	// SchemeSymmetric: file key = HKDF(term key, salt, "coffer/v1/file").
	SchemeSymmetric uint8 = 1
	// SchemeSealed is reserved for write-only keys (docs/format.md §11):
	// the file key comes from X25519 with the repository public key.
	SchemeSealed uint8 = 2
)

// HeaderSize is the size of the plaintext envelope header.
const HeaderSize = 44

var magic = [4]byte{'C', 'F', 'R', '1'}

// ErrNotCoffer is returned when data does not start with a coffer header.
var ErrNotCoffer = errors.New("not a coffer object (bad magic)")

// Header is the plaintext prefix of every encrypted object. It is
// authenticated: every AEAD segment of the object has it in its AAD.
type Header struct {
	Kind   ObjectKind
	Scheme uint8
	Cipher Cipher
	Term   uint32
	Salt   [32]byte
}

// NewHeader returns a header with a fresh random salt.
func NewHeader(kind ObjectKind, c Cipher, term uint32) (Header, error) {
	return newHeaderFrom(rand.Reader, kind, c, term)
}

// newHeaderFrom is NewHeader reading the salt from rnd (see sealFrom).
func newHeaderFrom(rnd io.Reader, kind ObjectKind, c Cipher, term uint32) (Header, error) {
	h := Header{Kind: kind, Scheme: SchemeSymmetric, Cipher: c, Term: term}
	if _, err := io.ReadFull(rnd, h.Salt[:]); err != nil {
		return Header{}, fmt.Errorf("read random bytes: %w", err)
	}
	return h, nil
}

// Marshal encodes the header in its fixed 44-byte form.
func (h Header) Marshal() []byte {
	b := make([]byte, HeaderSize)
	copy(b, magic[:])
	b[4] = byte(h.Kind)
	b[5] = h.Scheme
	b[6] = byte(h.Cipher)
	b[7] = 0
	binary.BigEndian.PutUint32(b[8:], h.Term)
	copy(b[12:], h.Salt[:])
	return b
}

// ParseHeader decodes and validates a header.
func ParseHeader(b []byte) (Header, error) {
	if len(b) < HeaderSize {
		return Header{}, fmt.Errorf("object truncated: %d bytes, header needs %d", len(b), HeaderSize)
	}
	if !bytes.Equal(b[:4], magic[:]) {
		return Header{}, ErrNotCoffer
	}
	h := Header{Kind: ObjectKind(b[4]), Scheme: b[5], Cipher: Cipher(b[6]), Term: binary.BigEndian.Uint32(b[8:])}
	copy(h.Salt[:], b[12:HeaderSize])
	if b[7] != 0 {
		return Header{}, fmt.Errorf("unsupported header flags %#x", b[7])
	}
	if h.Kind < KindConfig || h.Kind > KindCondemned {
		return Header{}, fmt.Errorf("unknown object kind %d", b[4])
	}
	if h.Scheme != SchemeSymmetric {
		return Header{}, fmt.Errorf("unsupported key scheme %d", h.Scheme)
	}
	if !h.Cipher.Valid() {
		return Header{}, fmt.Errorf("unknown cipher %d", b[6])
	}
	return h, nil
}

// FileSealer seals the segments of one object under its own file subkey.
// Each segment's AAD is: "coffer/v1" 0x00 | repository ID | header |
// object name | 0x00 | segment context. So a segment cannot be moved to
// another repository, object, kind or position without failing to open.
type FileSealer struct {
	aead   cipher.AEAD
	prefix []byte
}

// NewFileSealer derives the file key for h from termKey and binds repoID and
// the object's storage name (for example "data/ab12…").
func NewFileSealer(h Header, termKey Key, repoID []byte, objectName string) (*FileSealer, error) {
	fk := DeriveKey(termKey[:], h.Salt[:], "coffer/v1/file")
	a, err := NewAEAD(h.Cipher, fk)
	if err != nil {
		return nil, err
	}
	p := make([]byte, 0, 10+len(repoID)+HeaderSize+len(objectName)+1)
	p = append(p, "coffer/v1\x00"...)
	p = append(p, repoID...)
	p = append(p, h.Marshal()...)
	p = append(p, objectName...)
	p = append(p, 0)
	return &FileSealer{aead: a, prefix: p}, nil
}

func (s *FileSealer) aad(context []byte) []byte {
	a := make([]byte, 0, len(s.prefix)+len(context))
	a = append(a, s.prefix...)
	return append(a, context...)
}

// Seal encrypts one segment, appending nonce||ciphertext||tag to dst.
func (s *FileSealer) Seal(dst, plaintext, context []byte) []byte {
	return s.sealFrom(rand.Reader, dst, plaintext, context)
}

// sealFrom is Seal reading the nonce from rnd (see the function sealFrom).
func (s *FileSealer) sealFrom(rnd io.Reader, dst, plaintext, context []byte) []byte {
	return sealFrom(rnd, s.aead, dst, plaintext, s.aad(context))
}

// SealInPlace encrypts one segment without another buffer: buf holds the
// n-byte plaintext at buf[NonceSize:NonceSize+n] and has room for
// n+Overhead bytes. It returns buf[:n+Overhead], holding what Seal returns
// for that plaintext (nonce||ciphertext||tag). It panics if buf is too
// small, which is a programming error.
func (s *FileSealer) SealInPlace(buf []byte, n int, context []byte) []byte {
	if n < 0 || cap(buf) < n+Overhead {
		panic("crypto: SealInPlace buffer too small")
	}
	// The nonce goes to buf[:NonceSize], before the plaintext, and the
	// ciphertext overlaps the plaintext exactly, which AEADs allow.
	return Seal(s.aead, buf[:0], buf[NonceSize:NonceSize+n], s.aad(context))
}

// Open decrypts one segment; ErrAuthFailed if it does not authenticate.
func (s *FileSealer) Open(dst, sealed, context []byte) ([]byte, error) {
	return Open(s.aead, dst, sealed, s.aad(context))
}

// SealObject returns header || Seal(plaintext) for a single-segment object.
func SealObject(kind ObjectKind, c Cipher, term uint32, termKey Key, repoID []byte, name string, plaintext []byte) ([]byte, error) {
	return sealObjectFrom(rand.Reader, kind, c, term, termKey, repoID, name, plaintext)
}

// sealObjectFrom is SealObject reading the salt, then the nonce, from rnd
// (see sealFrom).
func sealObjectFrom(rnd io.Reader, kind ObjectKind, c Cipher, term uint32, termKey Key, repoID []byte, name string, plaintext []byte) ([]byte, error) {
	h, err := newHeaderFrom(rnd, kind, c, term)
	if err != nil {
		return nil, err
	}
	s, err := NewFileSealer(h, termKey, repoID, name)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, HeaderSize+len(plaintext)+Overhead)
	out = append(out, h.Marshal()...)
	return s.sealFrom(rnd, out, plaintext, nil), nil
}

// KeyLookup returns the key for a term number.
type KeyLookup func(term uint32) (Key, error)

// OpenObject reverses SealObject after checking that the object is of kind
// want. Errors wrap ErrAuthFailed or ErrNotCoffer where those apply.
func OpenObject(want ObjectKind, keys KeyLookup, repoID []byte, name string, data []byte) ([]byte, error) {
	h, err := ParseHeader(data)
	if err != nil {
		return nil, err
	}
	if h.Kind != want {
		return nil, fmt.Errorf("object %s is a %s, expected a %s: %w", name, h.Kind, want, ErrAuthFailed)
	}
	k, err := keys(h.Term)
	if err != nil {
		return nil, err
	}
	s, err := NewFileSealer(h, k, repoID, name)
	if err != nil {
		return nil, err
	}
	return s.Open(nil, data[HeaderSize:], nil)
}
