package crypto

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"os"
	"testing"

	"golang.org/x/crypto/chacha20poly1305"
	xhkdf "golang.org/x/crypto/hkdf"
)

// Known-answer vectors for the envelope of docs/format.md §2 (file keys)
// and §4 (header, segments, AAD). testdata/envelope-vectors.json holds
// inputs and the bytes the spec derives from them; specEnvelope below
// computes those bytes from the spec alone, with the standard library and
// x/crypto (not this package), and the tests hold both the JSON and this
// package to them. Regenerate the JSON only for a new format version:
//
//	COFFER_REGEN_VECTORS=1 go test ./internal/crypto/ -run TestEnvelopeVectors
const envelopeVectorsFile = "testdata/envelope-vectors.json"

type hexBytes []byte

func (h hexBytes) MarshalText() ([]byte, error) { return []byte(hex.EncodeToString(h)), nil }
func (h *hexBytes) UnmarshalText(b []byte) error {
	x, err := hex.DecodeString(string(b))
	*h = x
	return err
}

type envelopeVector struct {
	Name string `json:"name"`
	// Inputs.
	Kind       uint8    `json:"kind"`
	Cipher     uint8    `json:"cipher"`
	Term       uint32   `json:"term"`
	TermKey    hexBytes `json:"term_key"`
	RepoID     hexBytes `json:"repo_id"`
	Salt       hexBytes `json:"salt"`
	ObjectName string   `json:"object_name"`
	Nonce      hexBytes `json:"nonce"`
	Context    hexBytes `json:"context"`
	Plaintext  hexBytes `json:"plaintext"`
	// Derived by the spec.
	Header  hexBytes `json:"header"`
	FileKey hexBytes `json:"file_key"`
	AAD     hexBytes `json:"aad"`
	Segment hexBytes `json:"segment"`
	// Object is header || segment, for single-segment objects (no context).
	Object hexBytes `json:"object,omitempty"`
}

type envelopeVectors struct {
	Comment string           `json:"comment"`
	Vectors []envelopeVector `json:"vectors"`
}

// fill returns n bytes counting up from start: fixed, recognisable inputs.
func fill(start byte, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = start + byte(i)
	}
	return b
}

// envelopeInputs are the vectors' inputs: both ciphers, term 0 (KEK) and
// later terms, a single-segment object and a blob segment with context.
func envelopeInputs() []envelopeVector {
	blobContext := append([]byte{1}, fill(0xb0, 32)...) // type 1 (data) || blob ID
	return []envelopeVector{
		{Name: "config, AES-256-GCM, term 0", Kind: 1, Cipher: 1, Term: 0,
			TermKey: fill(0x00, 32), RepoID: fill(0x20, 32), Salt: fill(0x40, 32), ObjectName: "config",
			Nonce: fill(0x60, 12), Plaintext: []byte(`{"version":1}`)},
		{Name: "snapshot, ChaCha20-Poly1305, term 3", Kind: 5, Cipher: 2, Term: 3,
			TermKey: fill(0x80, 32), RepoID: fill(0x20, 32), Salt: fill(0xa0, 32),
			ObjectName: "snapshots/" + hex.EncodeToString(fill(0xc0, 32)),
			Nonce:      fill(0xe0, 12), Plaintext: []byte(`{"time":"2026-01-02T03:04:05Z","tree":"` + hex.EncodeToString(fill(0x10, 32)) + `"}`)},
		{Name: "index, AES-256-GCM, term 1, empty plaintext", Kind: 4, Cipher: 1, Term: 1,
			TermKey: fill(0x11, 32), RepoID: fill(0x21, 32), Salt: fill(0x31, 32),
			ObjectName: "index/" + hex.EncodeToString(fill(0x41, 32)), Nonce: fill(0x51, 12), Plaintext: []byte{}},
		{Name: "blob segment in a pack, AES-256-GCM, term 2", Kind: 3, Cipher: 1, Term: 2,
			TermKey: fill(0x12, 32), RepoID: fill(0x22, 32), Salt: fill(0x32, 32),
			ObjectName: "data/" + hex.EncodeToString(fill(0x42, 32)), Nonce: fill(0x52, 12),
			Context: blobContext, Plaintext: append([]byte{0}, []byte("raw blob payload")...)},
		{Name: "directory segment, ChaCha20-Poly1305, term 1", Kind: 3, Cipher: 2, Term: 1,
			TermKey: fill(0x13, 32), RepoID: fill(0x23, 32), Salt: fill(0x33, 32),
			ObjectName: "data/" + hex.EncodeToString(fill(0x43, 32)), Nonce: fill(0x53, 12),
			Context: []byte("dir"), Plaintext: []byte{1, 0, 0, 0, 0, 0, 0, 0}},
	}
}

// specEnvelope derives a vector's outputs from its inputs following
// docs/format.md, without this package's code.
func specEnvelope(t *testing.T, v envelopeVector) envelopeVector {
	t.Helper()
	h := make([]byte, 0, 44)
	h = append(h, "CFR1"...)
	h = append(h, v.Kind, 1 /* symmetric */, v.Cipher, 0 /* flags */)
	h = binary.BigEndian.AppendUint32(h, v.Term)
	h = append(h, v.Salt...)
	fk := make([]byte, 32)
	if _, err := io.ReadFull(xhkdf.New(sha256.New, v.TermKey, v.Salt, []byte("coffer/v1/file")), fk); err != nil {
		t.Fatal(err)
	}
	aad := append([]byte("coffer/v1\x00"), v.RepoID...)
	aad = append(aad, h...)
	aad = append(aad, v.ObjectName...)
	aad = append(aad, 0)
	aad = append(aad, v.Context...)
	var a cipher.AEAD
	var err error
	switch v.Cipher {
	case 1:
		var b cipher.Block
		if b, err = aes.NewCipher(fk); err == nil {
			a, err = cipher.NewGCM(b)
		}
	case 2:
		a, err = chacha20poly1305.New(fk)
	default:
		err = errors.New("unknown cipher in vector")
	}
	if err != nil {
		t.Fatal(err)
	}
	v.Header, v.FileKey, v.AAD = h, fk, aad
	v.Segment = a.Seal(bytes.Clone(v.Nonce), v.Nonce, v.Plaintext, aad)
	v.Object = nil
	if len(v.Context) == 0 {
		v.Object = append(bytes.Clone(h), v.Segment...)
	}
	return v
}

func loadEnvelopeVectors(t *testing.T) []envelopeVector {
	t.Helper()
	if os.Getenv("COFFER_REGEN_VECTORS") == "1" {
		out := envelopeVectors{Comment: "coffer envelope known-answer vectors (docs/format.md §2, §4); all byte strings hex; see vectors_test.go"}
		for _, in := range envelopeInputs() {
			out.Vectors = append(out.Vectors, specEnvelope(t, in))
		}
		b, err := json.MarshalIndent(out, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(envelopeVectorsFile, append(b, '\n'), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(envelopeVectorsFile)
	if err != nil {
		t.Fatal(err)
	}
	var f envelopeVectors
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	if len(f.Vectors) != len(envelopeInputs()) {
		t.Fatalf("%d vectors in %s, want %d", len(f.Vectors), envelopeVectorsFile, len(envelopeInputs()))
	}
	return f.Vectors
}

func TestEnvelopeVectors(t *testing.T) {
	for i, v := range loadEnvelopeVectors(t) {
		t.Run(v.Name, func(t *testing.T) {
			t.Parallel()
			// The checked-in bytes are what the spec derives.
			spec := specEnvelope(t, envelopeInputs()[i])
			want, _ := json.Marshal(spec)
			got, _ := json.Marshal(v)
			if !bytes.Equal(want, got) {
				t.Fatalf("vector differs from the spec's derivation:\n file %s\n spec %s", got, want)
			}
			checkEnvelopeVector(t, v)
		})
	}
}

// checkEnvelopeVector holds this package to one vector: it must write
// exactly its bytes and open them.
func checkEnvelopeVector(t *testing.T, v envelopeVector) {
	t.Helper()
	h := Header{Kind: ObjectKind(v.Kind), Scheme: SchemeSymmetric, Cipher: Cipher(v.Cipher), Term: v.Term, Salt: [32]byte(v.Salt)}
	if got := h.Marshal(); !bytes.Equal(got, v.Header) {
		t.Fatalf("header %x, want %x", got, v.Header)
	}
	if parsed, err := ParseHeader(v.Header); err != nil || parsed != h {
		t.Fatalf("ParseHeader: %+v, %v; want %+v", parsed, err, h)
	}
	if fk := DeriveKey(v.TermKey, v.Salt, "coffer/v1/file"); !bytes.Equal(fk[:], v.FileKey) {
		t.Fatalf("file key %x, want %x", fk, v.FileKey)
	}
	s, err := NewFileSealer(h, Key(v.TermKey), v.RepoID, v.ObjectName)
	if err != nil {
		t.Fatal(err)
	}
	if got := s.aad(v.Context); !bytes.Equal(got, v.AAD) {
		t.Fatalf("AAD %x, want %x", got, v.AAD)
	}
	if got := s.sealFrom(bytes.NewReader(v.Nonce), nil, v.Plaintext, v.Context); !bytes.Equal(got, v.Segment) {
		t.Fatalf("segment %x, want %x", got, v.Segment)
	}
	if pt, err := s.Open(nil, v.Segment, v.Context); err != nil || !bytes.Equal(pt, v.Plaintext) {
		t.Fatalf("open segment: %q, %v", pt, err)
	}
	if _, err := s.Open(nil, v.Segment, append(bytes.Clone(v.Context), 'x')); !errors.Is(err, ErrAuthFailed) {
		t.Fatalf("segment opened under another context: %v", err)
	}
	if len(v.Context) > 0 {
		return
	}
	rnd := bytes.NewReader(append(bytes.Clone(v.Salt), v.Nonce...))
	obj, err := sealObjectFrom(rnd, ObjectKind(v.Kind), Cipher(v.Cipher), v.Term, Key(v.TermKey), v.RepoID, v.ObjectName, v.Plaintext)
	if err != nil || !bytes.Equal(obj, v.Object) {
		t.Fatalf("SealObject %x (%v), want %x", obj, err, v.Object)
	}
	keys := func(term uint32) (Key, error) {
		if term != v.Term {
			return Key{}, errors.New("unexpected term")
		}
		return Key(v.TermKey), nil
	}
	if pt, err := OpenObject(ObjectKind(v.Kind), keys, v.RepoID, v.ObjectName, v.Object); err != nil || !bytes.Equal(pt, v.Plaintext) {
		t.Fatalf("OpenObject: %q, %v", pt, err)
	}
	if _, err := OpenObject(ObjectKind(v.Kind), keys, v.RepoID, v.ObjectName+"0", v.Object); !errors.Is(err, ErrAuthFailed) {
		t.Fatalf("object opened under another name: %v", err)
	}
}
