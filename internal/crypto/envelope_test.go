package crypto

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"testing"
)

var testRepo = bytes.Repeat([]byte{0x42}, 32)

func fixedLookup(k Key) KeyLookup {
	return func(uint32) (Key, error) { return k, nil }
}

func TestHeaderRoundTrip(t *testing.T) {
	h, err := NewHeader(KindIndex, ChaCha20Poly1305, 7)
	if err != nil {
		t.Fatal(err)
	}
	if h.Salt == ([32]byte{}) || h.Scheme != SchemeSymmetric {
		t.Fatalf("NewHeader = %+v", h)
	}
	h2, _ := NewHeader(KindIndex, ChaCha20Poly1305, 7)
	if h.Salt == h2.Salt {
		t.Fatal("two headers share a salt")
	}
	b := h.Marshal()
	if len(b) != HeaderSize || string(b[:4]) != "CFR1" || binary.BigEndian.Uint32(b[8:]) != 7 {
		t.Fatalf("Marshal = %x", b)
	}
	got, err := ParseHeader(append(b, 1, 2, 3))
	if err != nil || got != h {
		t.Fatalf("ParseHeader = %+v, %v", got, err)
	}
}

func TestParseHeaderRejects(t *testing.T) {
	h, _ := NewHeader(KindPack, AES256GCM, 1)
	good := h.Marshal()
	set := func(i int, v byte) []byte {
		b := append([]byte(nil), good...)
		b[i] = v
		return b
	}
	cases := map[string][]byte{
		"short":      good[:HeaderSize-1],
		"empty":      nil,
		"flags":      set(7, 1),
		"kind 0":     set(4, 0),
		"kind 9":     set(4, 9),
		"scheme 0":   set(5, 0),
		"scheme 2":   set(5, SchemeSealed), // reserved, not implemented
		"cipher 0":   set(6, 0),
		"cipher 3":   set(6, 3),
		"magic":      set(3, '2'),
		"magic zero": make([]byte, HeaderSize),
	}
	for name, b := range cases {
		if _, err := ParseHeader(b); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := ParseHeader(set(0, 'X')); !errors.Is(err, ErrNotCoffer) {
		t.Errorf("bad magic: %v", err)
	}
}

func TestObjectRoundTrip(t *testing.T) {
	for _, c := range ciphers {
		k, _ := NewRandomKey()
		for _, pt := range [][]byte{nil, []byte("x"), bytes.Repeat([]byte("snapshot "), 1000)} {
			data, err := SealObject(KindSnapshot, c, 3, k, testRepo, "snapshots/ab", pt)
			if err != nil {
				t.Fatal(err)
			}
			if len(data) != HeaderSize+len(pt)+Overhead {
				t.Fatalf("sealed length %d", len(data))
			}
			got, err := OpenObject(KindSnapshot, fixedLookup(k), testRepo, "snapshots/ab", data)
			if err != nil || !bytes.Equal(got, pt) {
				t.Fatalf("%v: OpenObject = %v", c, err)
			}
		}
	}
}

// Everything the AAD binds must make the object fail to open when changed.
func TestObjectTamperFailsAuth(t *testing.T) {
	for _, c := range ciphers {
		t.Run(c.String(), func(t *testing.T) {
			k, _ := NewRandomKey()
			data, err := SealObject(KindIndex, c, 5, k, testRepo, "index/01", []byte("index body"))
			if err != nil {
				t.Fatal(err)
			}
			open := func(want ObjectKind, repo []byte, name string, d []byte) error {
				_, err := OpenObject(want, fixedLookup(k), repo, name, d)
				return err
			}
			edit := func(i int, v byte) []byte {
				d := append([]byte(nil), data...)
				d[i] = v
				return d
			}
			other := ChaCha20Poly1305
			if c == other {
				other = AES256GCM
			}
			termEdited := append([]byte(nil), data...)
			binary.BigEndian.PutUint32(termEdited[8:], 6)
			cases := []struct {
				name string
				err  error
			}{
				{"kind relabelled, opened as new kind", open(KindSnapshot, testRepo, "index/01", edit(4, byte(KindSnapshot)))},
				{"kind relabelled, opened as old kind", open(KindIndex, testRepo, "index/01", edit(4, byte(KindSnapshot)))},
				{"opened as another kind", open(KindSnapshot, testRepo, "index/01", data)},
				{"cipher", open(KindIndex, testRepo, "index/01", edit(6, byte(other)))},
				{"term (same key for every term)", open(KindIndex, testRepo, "index/01", termEdited)},
				{"salt", open(KindIndex, testRepo, "index/01", edit(20, data[20]^1))},
				{"object name", open(KindIndex, testRepo, "index/02", data)},
				{"repository ID", open(KindIndex, bytes.Repeat([]byte{0x43}, 32), "index/01", data)},
				{"repository ID prefix", open(KindIndex, testRepo[:31], "index/01", data)},
				{"body", open(KindIndex, testRepo, "index/01", edit(HeaderSize+3, data[HeaderSize+3]^1))},
				{"tag", open(KindIndex, testRepo, "index/01", edit(len(data)-1, data[len(data)-1]^1))},
				{"truncated", open(KindIndex, testRepo, "index/01", data[:len(data)-1])},
				{"header only", open(KindIndex, testRepo, "index/01", data[:HeaderSize])},
			}
			for _, tc := range cases {
				if !errors.Is(tc.err, ErrAuthFailed) {
					t.Errorf("%s: %v, want ErrAuthFailed", tc.name, tc.err)
				}
			}
			if err := open(KindIndex, testRepo, "index/01", data); err != nil {
				t.Fatalf("untampered object: %v", err)
			}
		})
	}
}

func TestOpenObjectUsesHeaderTerm(t *testing.T) {
	keys := map[uint32]Key{}
	for term := uint32(1); term <= 3; term++ {
		keys[term], _ = NewRandomKey()
	}
	lookup := func(term uint32) (Key, error) {
		k, ok := keys[term]
		if !ok {
			return Key{}, fmt.Errorf("no term %d", term)
		}
		return k, nil
	}
	data, _ := SealObject(KindPack, AES256GCM, 2, keys[2], testRepo, "data/aa", []byte("p"))
	if _, err := OpenObject(KindPack, lookup, testRepo, "data/aa", data); err != nil {
		t.Fatal(err)
	}
	// Relabel as term 3: the lookup returns a different key and the header is
	// in the AAD, so it fails either way.
	bad := append([]byte(nil), data...)
	binary.BigEndian.PutUint32(bad[8:], 3)
	if _, err := OpenObject(KindPack, lookup, testRepo, "data/aa", bad); !errors.Is(err, ErrAuthFailed) {
		t.Errorf("relabelled term: %v", err)
	}
	binary.BigEndian.PutUint32(bad[8:], 9)
	if _, err := OpenObject(KindPack, lookup, testRepo, "data/aa", bad); err == nil || errors.Is(err, ErrAuthFailed) {
		t.Errorf("unknown term: %v, want the lookup's error", err)
	}
}

// packSealer returns a sealer for pack "data/p1" under a new key, with the
// header and key it was made from.
func packSealer(t *testing.T, c Cipher) (*FileSealer, Header, Key) {
	t.Helper()
	k, err := NewRandomKey()
	if err != nil {
		t.Fatal(err)
	}
	h, err := NewHeader(KindPack, c, 1)
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewFileSealer(h, k, testRepo, "data/p1")
	if err != nil {
		t.Fatal(err)
	}
	return s, h, k
}

func TestFileSealerSegmentsBound(t *testing.T) {
	for _, c := range ciphers {
		s, h, k := packSealer(t, c)
		seg := s.Seal(nil, []byte("blob A"), []byte("\x01idA"))
		if got, err := s.Open(nil, seg, []byte("\x01idA")); err != nil || string(got) != "blob A" {
			t.Fatalf("segment round trip: %v", err)
		}
		if _, err := s.Open(nil, seg, []byte("\x01idB")); !errors.Is(err, ErrAuthFailed) {
			t.Errorf("segment under another blob ID: %v", err)
		}
		if _, err := s.Open(nil, seg, []byte("\x02idA")); !errors.Is(err, ErrAuthFailed) {
			t.Errorf("segment under another blob type: %v", err)
		}
		// The same segment in another pack with the same header and key.
		s2, _ := NewFileSealer(h, k, testRepo, "data/p2")
		if _, err := s2.Open(nil, seg, []byte("\x01idA")); !errors.Is(err, ErrAuthFailed) {
			t.Errorf("segment moved to another pack: %v", err)
		}
		// Same everything but another salt: another file key.
		h3 := h
		h3.Salt[0] ^= 1
		s3, _ := NewFileSealer(h3, k, testRepo, "data/p1")
		if _, err := s3.Open(nil, seg, []byte("\x01idA")); !errors.Is(err, ErrAuthFailed) {
			t.Errorf("segment under another salt: %v", err)
		}
	}
}

func TestSealInPlace(t *testing.T) {
	for _, c := range ciphers {
		s, _, _ := packSealer(t, c)
		for _, n := range []int{0, 1, 100, 1 << 16} {
			plain := make([]byte, n)
			for i := range plain {
				plain[i] = byte(i * 7)
			}
			buf := make([]byte, n+Overhead+5) // spare capacity is left alone
			copy(buf[NonceSize:], plain)
			sealed := s.SealInPlace(buf, n, []byte("ctx"))
			if len(sealed) != n+Overhead || &sealed[0] != &buf[0] {
				t.Fatalf("%s n=%d: sealed %d bytes, not in buf", c, n, len(sealed))
			}
			if n > 16 && bytes.Contains(sealed, plain[:16]) {
				t.Fatalf("%s n=%d: plaintext left in the sealed segment", c, n)
			}
			got, err := s.Open(nil, sealed, []byte("ctx"))
			if err != nil || !bytes.Equal(got, plain) {
				t.Fatalf("%s n=%d: round trip: %v", c, n, err)
			}
			if _, err := s.Open(nil, sealed, []byte("other")); !errors.Is(err, ErrAuthFailed) {
				t.Fatalf("%s n=%d: opened under another context: %v", c, n, err)
			}
		}
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: a buffer without room for the tag was accepted", c)
				}
			}()
			s.SealInPlace(make([]byte, 10+Overhead-1), 10, nil)
		}()
	}
}

func FuzzParseHeader(f *testing.F) {
	h, _ := NewHeader(KindConfig, AES256GCM, 0)
	f.Add(h.Marshal())
	f.Add([]byte("CFR1"))
	f.Add(make([]byte, HeaderSize))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := ParseHeader(b)
		if err != nil {
			return
		}
		if !bytes.Equal(h.Marshal(), b[:HeaderSize]) {
			t.Fatalf("header does not re-encode to its input")
		}
		if !h.Cipher.Valid() || h.Scheme != SchemeSymmetric || h.Kind < KindConfig || h.Kind > KindCondemned {
			t.Fatalf("invalid header accepted: %+v", h)
		}
	})
}

func FuzzOpenObject(f *testing.F) {
	k := Key{1, 2, 3}
	for _, c := range ciphers {
		d, err := SealObject(KindSnapshot, c, 1, k, testRepo, "snapshots/aa", []byte(`{"x":1}`))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(d, "snapshots/aa")
		f.Add(d[:len(d)-1], "snapshots/aa")
		f.Add(d, "snapshots/ab")
	}
	f.Add([]byte("CFR1"), "x")
	f.Fuzz(func(t *testing.T, data []byte, name string) {
		pt, err := OpenObject(KindSnapshot, fixedLookup(k), testRepo, name, data)
		if err != nil {
			h, herr := ParseHeader(data)
			if herr == nil && h.Kind == KindSnapshot && !errors.Is(err, ErrAuthFailed) {
				t.Fatalf("well-formed header but error %v does not wrap ErrAuthFailed", err)
			}
			return
		}
		// Anything that opens must have been sealed by a key holder: its
		// body is exactly plaintext plus overhead.
		if len(data) != HeaderSize+len(pt)+Overhead {
			t.Fatalf("opened %d bytes into %d bytes of plaintext", len(data), len(pt))
		}
	})
}
