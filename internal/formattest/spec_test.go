package formattest

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/bits"

	"golang.org/x/crypto/chacha20poly1305"
	xhkdf "golang.org/x/crypto/hkdf"
)

// docs/format.md written out a second time, with the standard library and
// x/crypto and nothing of coffer's: the known-answer vectors come from
// here, and coffer's output is parsed and rebuilt here.

type hexBytes []byte

func (h hexBytes) MarshalText() ([]byte, error) { return []byte(hex.EncodeToString(h)), nil }
func (h *hexBytes) UnmarshalText(b []byte) error {
	x, err := hex.DecodeString(string(b))
	*h = x
	return err
}

// fill returns n bytes counting up from start: fixed, recognisable inputs.
func fill(start byte, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = start + byte(i)
	}
	return b
}

// specHKDF is HKDF-SHA-256 to 32 bytes (§2).
func specHKDF(secret, salt []byte, info string) []byte {
	out := make([]byte, 32)
	if _, err := io.ReadFull(xhkdf.New(sha256.New, secret, salt, []byte(info)), out); err != nil {
		panic(err)
	}
	return out
}

// specHeader is the 44-byte envelope header of §4, symmetric scheme.
func specHeader(kind, cipherID byte, term uint32, salt []byte) []byte {
	h := append([]byte("CFR1"), kind, 1, cipherID, 0)
	h = binary.BigEndian.AppendUint32(h, term)
	return append(h, salt...)
}

// specAAD is a segment's AAD (§4).
func specAAD(repoID, header []byte, object string, context []byte) []byte {
	a := append([]byte("coffer/v1\x00"), repoID...)
	a = append(a, header...)
	a = append(a, object...)
	a = append(a, 0)
	return append(a, context...)
}

// specSealer seals and opens the segments of one object (§2 file keys, §4).
type specSealer struct {
	aead   cipher.AEAD
	header []byte
	repoID []byte
	object string
}

func newSpecSealer(header, termKey, repoID []byte, object string) (*specSealer, error) {
	if len(header) < 44 || string(header[:4]) != "CFR1" || header[5] != 1 || header[7] != 0 {
		return nil, errors.New("not a symmetric version-1 envelope header")
	}
	fk := specHKDF(termKey, header[12:44], "coffer/v1/file")
	var a cipher.AEAD
	var err error
	switch header[6] {
	case 1:
		var b cipher.Block
		if b, err = aes.NewCipher(fk); err == nil {
			a, err = cipher.NewGCM(b)
		}
	case 2:
		a, err = chacha20poly1305.New(fk)
	default:
		err = fmt.Errorf("unknown cipher %d", header[6])
	}
	if err != nil {
		return nil, err
	}
	return &specSealer{aead: a, header: bytes.Clone(header[:44]), repoID: repoID, object: object}, nil
}

func (s *specSealer) seal(nonce, plaintext, context []byte) []byte {
	return s.aead.Seal(bytes.Clone(nonce), nonce, plaintext, specAAD(s.repoID, s.header, s.object, context))
}

func (s *specSealer) open(segment, context []byte) ([]byte, error) {
	if len(segment) < 12+16 {
		return nil, errors.New("segment too short")
	}
	return s.aead.Open(nil, segment[:12], segment[12:], specAAD(s.repoID, s.header, s.object, context))
}

// specPadme is Padmé as its paper (Nikitin et al., PETS 2019) gives it.
func specPadme(l int64) int64 {
	if l <= 1 {
		return l
	}
	e := bits.Len64(uint64(l)) - 1
	s := bits.Len64(uint64(e))
	mask := int64(1)<<(e-s) - 1
	return (l + mask) &^ mask
}

// specEntry is a pack directory or index entry (§5).
type specEntry struct {
	Type   byte     `json:"type"`
	ID     hexBytes `json:"id"`
	Offset uint32   `json:"offset"`
	Length uint32   `json:"length"`
	RawLen uint32   `json:"raw_length"`
}

func (e specEntry) encode(b []byte) []byte {
	b = append(b, e.Type)
	b = append(b, e.ID...)
	b = binary.BigEndian.AppendUint32(b, e.Offset)
	b = binary.BigEndian.AppendUint32(b, e.Length)
	return binary.BigEndian.AppendUint32(b, e.RawLen)
}

const specEntrySize = 1 + 32 + 12

func decodeSpecEntry(b []byte) specEntry {
	return specEntry{Type: b[0], ID: bytes.Clone(b[1:33]), Offset: binary.BigEndian.Uint32(b[33:]),
		Length: binary.BigEndian.Uint32(b[37:]), RawLen: binary.BigEndian.Uint32(b[41:])}
}

// specBlob is one blob segment of a pack, in layout order.
type specBlob struct {
	Type      byte     `json:"type"`
	ID        hexBytes `json:"id"`
	Plaintext hexBytes `json:"plaintext"`
	Payload   hexBytes `json:"payload"` // encoding byte || raw bytes or zstd frame
	Nonce     hexBytes `json:"nonce"`
}

// specPack builds a pack file (§5) from its parts: blobs in the given
// layout order, the directory zero-padded to the Padmé length.
func specPack(s *specSealer, blobs []specBlob, dirNonce []byte) (pack, dir []byte, entries []specEntry) {
	pack = bytes.Clone(s.header)
	for _, b := range blobs {
		seg := s.seal(b.Nonce, b.Payload, append([]byte{b.Type}, b.ID...))
		entries = append(entries, specEntry{Type: b.Type, ID: b.ID, Offset: uint32(len(pack)), Length: uint32(len(seg)), RawLen: uint32(len(b.Plaintext))}) // #nosec G115 -- test sizes
		pack = append(pack, seg...)
	}
	dir = binary.BigEndian.AppendUint32([]byte{1}, uint32(len(entries))) // #nosec G115 -- test sizes
	for _, e := range entries {
		dir = e.encode(dir)
	}
	unpadded := int64(len(pack) + len(dir) + 12 + 16 + 4)
	dir = append(dir, make([]byte, specPadme(unpadded)-unpadded)...)
	sealed := s.seal(dirNonce, dir, []byte("dir"))
	pack = append(pack, sealed...)
	pack = binary.BigEndian.AppendUint32(pack, uint32(len(sealed))) // #nosec G115 -- test sizes
	return pack, dir, entries
}

// parsedPack is what specParsePack read from a pack.
type parsedPack struct {
	blobs    []specBlob // Plaintext left empty; Payload and Nonce filled
	entries  []specEntry
	dirNonce []byte
}

// specParsePack reads a pack strictly by §5: directory at the end, blobs
// back to back from the header on, zero padding, Padmé total length.
func specParsePack(s *specSealer, pack []byte) (*parsedPack, error) {
	if len(pack) < 44+4 || !bytes.Equal(pack[:44], s.header) {
		return nil, errors.New("header mismatch")
	}
	n := int(binary.BigEndian.Uint32(pack[len(pack)-4:]))
	if n+4+44 > len(pack) {
		return nil, errors.New("directory length out of range")
	}
	sealedDir := pack[len(pack)-4-n : len(pack)-4]
	dir, err := s.open(sealedDir, []byte("dir"))
	if err != nil {
		return nil, fmt.Errorf("directory: %w", err)
	}
	if len(dir) < 5 || dir[0] != 1 {
		return nil, errors.New("directory version")
	}
	count := int(binary.BigEndian.Uint32(dir[1:]))
	if 5+count*specEntrySize > len(dir) {
		return nil, errors.New("directory count")
	}
	if pad := dir[5+count*specEntrySize:]; !bytes.Equal(pad, make([]byte, len(pad))) {
		return nil, errors.New("directory padding is not zero")
	}
	out := &parsedPack{dirNonce: bytes.Clone(sealedDir[:12])}
	off := uint32(44)
	for i := range count {
		e := decodeSpecEntry(dir[5+i*specEntrySize:])
		if e.Offset != off {
			return nil, fmt.Errorf("entry %d at %d, want %d (blobs back to back)", i, e.Offset, off)
		}
		seg := pack[e.Offset : e.Offset+e.Length]
		payload, err := s.open(seg, append([]byte{e.Type}, e.ID...))
		if err != nil {
			return nil, fmt.Errorf("blob %d: %w", i, err)
		}
		out.entries = append(out.entries, e)
		out.blobs = append(out.blobs, specBlob{Type: e.Type, ID: e.ID, Payload: payload, Nonce: bytes.Clone(seg[:12])})
		off += e.Length
	}
	if int(off) != len(pack)-4-n {
		return nil, errors.New("bytes between the last blob and the directory")
	}
	unpadded := int64(len(pack) - (len(dir) - 5 - count*specEntrySize))
	if int64(len(pack)) != specPadme(unpadded) {
		return nil, fmt.Errorf("pack of %d bytes, Padmé of %d is %d", len(pack), unpadded, specPadme(unpadded))
	}
	return out, nil
}

// specIndexPack is one pack of an index file (§6).
type specIndexPack struct {
	ID    hexBytes    `json:"id"`
	Blobs []specEntry `json:"blobs"`
}

// specIndex encodes an index file's plaintext (§6).
func specIndex(supersedes []hexBytes, packs []specIndexPack) []byte {
	b := binary.BigEndian.AppendUint32([]byte{1}, uint32(len(supersedes))) // #nosec G115 -- test sizes
	for _, id := range supersedes {
		b = append(b, id...)
	}
	b = binary.BigEndian.AppendUint32(b, uint32(len(packs))) // #nosec G115 -- test sizes
	for _, p := range packs {
		b = append(b, p.ID...)
		b = binary.BigEndian.AppendUint32(b, uint32(len(p.Blobs))) // #nosec G115 -- test sizes
		for _, e := range p.Blobs {
			b = e.encode(b)
		}
	}
	return b
}

// specParseIndex decodes an index file's plaintext strictly (§6).
func specParseIndex(b []byte) (supersedes []hexBytes, packs []specIndexPack, err error) {
	r := bytes.NewReader(b)
	read := func(n int) []byte {
		x := make([]byte, n)
		if _, e := io.ReadFull(r, x); e != nil && err == nil {
			err = fmt.Errorf("index truncated: %w", e)
		}
		return x
	}
	u32 := func() int { return int(binary.BigEndian.Uint32(read(4))) }
	if v := read(1); err != nil || v[0] != 1 {
		return nil, nil, errors.New("index version")
	}
	for range u32() {
		supersedes = append(supersedes, read(32))
	}
	np := u32()
	for i := 0; i < np && err == nil; i++ {
		p := specIndexPack{ID: read(32)}
		nb := u32()
		for j := 0; j < nb && err == nil; j++ {
			p.Blobs = append(p.Blobs, decodeSpecEntry(read(specEntrySize)))
		}
		packs = append(packs, p)
	}
	if err == nil && r.Len() != 0 {
		err = errors.New("trailing bytes in index")
	}
	return supersedes, packs, err
}
