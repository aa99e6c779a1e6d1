package repository

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	mrand "math/rand/v2"

	"github.com/coffer-backup/coffer/internal/compress"
	"github.com/coffer-backup/coffer/internal/crypto"
	"github.com/coffer-backup/coffer/internal/padding"
)

// ErrCorruptPack reports a pack that does not parse or authenticate.
var ErrCorruptPack = errors.New("pack is corrupt")

// Blob encodings inside a blob segment's plaintext.
const (
	encodingRaw  byte = 0
	encodingZstd byte = 1
)

// packEntrySize is the encoded size of one directory or index entry.
const packEntrySize = 1 + IDSize + 4 + 4 + 4

// MaxBlobSize bounds a blob's plaintext; chunks are at most 64 MiB and trees
// must fit too.
const MaxBlobSize = 128 << 20

// PackEntry locates one blob inside a pack.
type PackEntry struct {
	Type   BlobType
	ID     ID
	Offset uint32 // of the sealed segment, from the start of the pack
	Length uint32 // of the sealed segment
	RawLen uint32 // plaintext length of the blob
}

func (e PackEntry) encode(b []byte) []byte {
	b = append(b, byte(e.Type))
	b = append(b, e.ID[:]...)
	b = binary.BigEndian.AppendUint32(b, e.Offset)
	b = binary.BigEndian.AppendUint32(b, e.Length)
	return binary.BigEndian.AppendUint32(b, e.RawLen)
}

func decodeEntry(b []byte) (PackEntry, error) {
	var e PackEntry
	e.Type = BlobType(b[0])
	if !e.Type.Valid() {
		return e, fmt.Errorf("unknown blob type %d", b[0])
	}
	copy(e.ID[:], b[1:1+IDSize])
	e.Offset = binary.BigEndian.Uint32(b[1+IDSize:])
	e.Length = binary.BigEndian.Uint32(b[5+IDSize:])
	e.RawLen = binary.BigEndian.Uint32(b[9+IDSize:])
	if e.RawLen > MaxBlobSize {
		return e, fmt.Errorf("blob %s too large: %d", e.ID.Short(), e.RawLen)
	}
	return e, nil
}

func blobContext(t BlobType, id ID) []byte {
	c := make([]byte, 0, 1+IDSize)
	c = append(c, byte(t))
	return append(c, id[:]...)
}

var dirContext = []byte("dir")

// pendingBlob is a blob sealed into a pack that is not yet finished.
type pendingBlob struct {
	entry  PackEntry
	sealed []byte
}

// PackWriter assembles one pack in memory. It is not safe for concurrent use.
type PackWriter struct {
	ID     ID
	header crypto.Header
	sealer *crypto.FileSealer
	blobs  []pendingBlob
	size   int
	mode   compress.Mode
}

// NewPackWriter starts a pack sealed with the given term key.
func NewPackWriter(c crypto.Cipher, term uint32, key crypto.Key, repoID []byte, mode compress.Mode) (*PackWriter, error) {
	id := NewRandomID()
	h, err := crypto.NewHeader(crypto.KindPack, c, term)
	if err != nil {
		return nil, err
	}
	s, err := crypto.NewFileSealer(h, key, repoID, packName(id))
	if err != nil {
		return nil, err
	}
	return &PackWriter{ID: id, header: h, sealer: s, size: crypto.HeaderSize, mode: mode}, nil
}

func packName(id ID) string { return "data/" + id.String() }

// EncodeBlob compresses a blob's plaintext into the payload a blob segment
// seals: encoding byte, then raw or zstd bytes. It needs no pack, so callers
// run it concurrently before taking a pack writer.
func EncodeBlob(plaintext []byte, mode compress.Mode) ([]byte, error) {
	if len(plaintext) > MaxBlobSize {
		return nil, fmt.Errorf("blob of %d bytes exceeds the maximum %d", len(plaintext), MaxBlobSize)
	}
	// Compress straight behind the encoding byte to avoid another copy.
	buf := make([]byte, 1+len(plaintext)/2+64)
	out, compressed := compress.Compress(buf[1:1], plaintext, mode)
	switch {
	case compressed && len(out) > 0 && &out[0] == &buf[1]:
		buf[0] = encodingZstd
		return buf[:1+len(out)], nil
	case compressed:
		return append([]byte{encodingZstd}, out...), nil
	}
	payload := make([]byte, 0, len(plaintext)+1)
	payload = append(payload, encodingRaw)
	return append(payload, plaintext...), nil
}

// Add compresses and seals a blob whose ID the caller computed.
func (w *PackWriter) Add(t BlobType, id ID, plaintext []byte) error {
	payload, err := EncodeBlob(plaintext, w.mode)
	if err != nil {
		return err
	}
	w.AddEncoded(t, id, payload, len(plaintext))
	return nil
}

// AddEncoded seals a payload made by EncodeBlob.
func (w *PackWriter) AddEncoded(t BlobType, id ID, payload []byte, rawLen int) {
	sealed := w.sealer.Seal(make([]byte, 0, len(payload)+crypto.Overhead), payload, blobContext(t, id))
	w.blobs = append(w.blobs, pendingBlob{
		entry:  PackEntry{Type: t, ID: id, Length: uint32(len(sealed)), RawLen: uint32(rawLen)}, // #nosec G115 -- bounded by MaxBlobSize
		sealed: sealed,
	})
	w.size += len(sealed)
}

// Size is the number of bytes the pack holds so far.
func (w *PackWriter) Size() int { return w.size }

// Count is the number of blobs added.
func (w *PackWriter) Count() int { return len(w.blobs) }

// packUint32 converts a pack offset or count to its uint32 field, failing
// when the pack has outgrown the 4 GiB format limit.
func packUint32(n int, what string) (uint32, error) {
	if n < 0 || n > math.MaxUint32 {
		return 0, fmt.Errorf("pack too large: %d %s", n, what)
	}
	return uint32(n), nil
}

// Finish lays the blobs out in random order, appends the padded directory
// and returns the pack bytes and its entries (with offsets filled in).
func (w *PackWriter) Finish() ([]byte, []PackEntry, error) {
	mrand.Shuffle(len(w.blobs), func(i, j int) { w.blobs[i], w.blobs[j] = w.blobs[j], w.blobs[i] })
	out := make([]byte, 0, w.size+len(w.blobs)*packEntrySize+64)
	out = append(out, w.header.Marshal()...)
	entries := make([]PackEntry, len(w.blobs))
	for i := range w.blobs {
		b := &w.blobs[i]
		off, err := packUint32(len(out), "bytes")
		if err != nil {
			return nil, nil, err
		}
		b.entry.Offset = off
		out = append(out, b.sealed...)
		b.sealed = nil // let the collector reclaim it while the pack grows
		entries[i] = b.entry
	}
	count, err := packUint32(len(entries), "blobs")
	if err != nil {
		return nil, nil, err
	}
	dir := []byte{1}
	dir = binary.BigEndian.AppendUint32(dir, count)
	for _, e := range entries {
		dir = e.encode(dir)
	}
	unpadded := int64(len(out) + len(dir) + crypto.Overhead + 4)
	pad := padding.Padme(unpadded) - unpadded
	dir = append(dir, make([]byte, pad)...)
	sealedDir := w.sealer.Seal(nil, dir, dirContext)
	dirLen, err := packUint32(len(sealedDir), "directory bytes")
	if err != nil {
		return nil, nil, err
	}
	out = append(out, sealedDir...)
	out = binary.BigEndian.AppendUint32(out, dirLen)
	if int64(len(out)) > 1<<32-1 {
		return nil, nil, fmt.Errorf("pack too large: %d bytes", len(out))
	}
	return out, entries, nil
}

// PackReader opens blobs of one pack.
type PackReader struct {
	ID     ID
	sealer *crypto.FileSealer
	header crypto.Header
}

// NewPackReader parses a pack's envelope header.
func NewPackReader(id ID, headerBytes []byte, keys crypto.KeyLookup, repoID []byte) (*PackReader, error) {
	h, err := crypto.ParseHeader(headerBytes)
	if err != nil {
		return nil, fmt.Errorf("pack %s: %w: %v", id.Short(), ErrCorruptPack, err)
	}
	if h.Kind != crypto.KindPack {
		return nil, fmt.Errorf("pack %s: %w: header kind is %s", id.Short(), ErrCorruptPack, h.Kind)
	}
	k, err := keys(h.Term)
	if err != nil {
		return nil, fmt.Errorf("pack %s: %w", id.Short(), err)
	}
	s, err := crypto.NewFileSealer(h, k, repoID, packName(id))
	if err != nil {
		return nil, err
	}
	return &PackReader{ID: id, sealer: s, header: h}, nil
}

// Term is the key term the pack was sealed with.
func (r *PackReader) Term() uint32 { return r.header.Term }

// ParseDirectory reads the directory from the pack's tail. tail must hold at
// least the last 4+dirLen bytes; size is the whole pack's size.
func (r *PackReader) ParseDirectory(tail []byte, size int64) ([]PackEntry, error) {
	if len(tail) < 4 {
		return nil, fmt.Errorf("pack %s: %w: truncated", r.ID.Short(), ErrCorruptPack)
	}
	n := int64(binary.BigEndian.Uint32(tail[len(tail)-4:]))
	if n+4 > int64(len(tail)) || n+4+crypto.HeaderSize > size {
		return nil, fmt.Errorf("pack %s: %w: directory length %d out of range", r.ID.Short(), ErrCorruptPack, n)
	}
	sealed := tail[int64(len(tail))-4-n : len(tail)-4]
	dir, err := r.sealer.Open(nil, sealed, dirContext)
	if err != nil {
		return nil, fmt.Errorf("pack %s directory: %w: %v", r.ID.Short(), ErrCorruptPack, err)
	}
	if len(dir) < 5 || dir[0] != 1 {
		return nil, fmt.Errorf("pack %s: %w: bad directory version", r.ID.Short(), ErrCorruptPack)
	}
	count := int64(binary.BigEndian.Uint32(dir[1:]))
	if count*packEntrySize > int64(len(dir)-5) {
		return nil, fmt.Errorf("pack %s: %w: directory count %d", r.ID.Short(), ErrCorruptPack, count)
	}
	dirStart := size - 4 - n
	entries := make([]PackEntry, 0, count)
	p := dir[5:]
	for i := int64(0); i < count; i++ {
		e, err := decodeEntry(p[:packEntrySize])
		if err != nil {
			return nil, fmt.Errorf("pack %s: %w: %v", r.ID.Short(), ErrCorruptPack, err)
		}
		if int64(e.Offset) < crypto.HeaderSize || int64(e.Offset)+int64(e.Length) > dirStart || e.Length < crypto.Overhead+1 {
			return nil, fmt.Errorf("pack %s: %w: entry %d out of range", r.ID.Short(), ErrCorruptPack, i)
		}
		entries = append(entries, e)
		p = p[packEntrySize:]
	}
	return entries, nil
}

// OpenBlob decrypts and decompresses one sealed blob segment and checks its
// plaintext against the entry's length. The caller verifies the ID.
func (r *PackReader) OpenBlob(e PackEntry, sealed []byte) ([]byte, error) {
	p, err := r.sealer.Open(nil, sealed, blobContext(e.Type, e.ID))
	if err != nil {
		return nil, fmt.Errorf("blob %s in pack %s: %w", e.ID.Short(), r.ID.Short(), err)
	}
	if len(p) < 1 {
		return nil, fmt.Errorf("blob %s: %w: empty segment", e.ID.Short(), ErrCorruptPack)
	}
	var out []byte
	switch p[0] {
	case encodingRaw:
		out = p[1:]
	case encodingZstd:
		out, err = compress.Decompress(make([]byte, 0, e.RawLen), p[1:], int(e.RawLen))
		if err != nil {
			return nil, fmt.Errorf("blob %s in pack %s: decompress: %w", e.ID.Short(), r.ID.Short(), err)
		}
	default:
		return nil, fmt.Errorf("blob %s: %w: unknown encoding %d", e.ID.Short(), ErrCorruptPack, p[0])
	}
	if len(out) != int(e.RawLen) {
		return nil, fmt.Errorf("blob %s: %w: length %d, index says %d", e.ID.Short(), ErrCorruptPack, len(out), e.RawLen)
	}
	return out, nil
}

// VerifyPack parses a complete pack and checks every blob against entries
// and the hasher: the read-back check before a pack is committed.
func VerifyPack(id ID, data []byte, keys crypto.KeyLookup, repoID []byte, hasher *BlobHasher, want []PackEntry) error {
	if len(data) < crypto.HeaderSize+4 {
		return fmt.Errorf("pack %s: %w: truncated", id.Short(), ErrCorruptPack)
	}
	r, err := NewPackReader(id, data[:crypto.HeaderSize], keys, repoID)
	if err != nil {
		return err
	}
	entries, err := r.ParseDirectory(data, int64(len(data)))
	if err != nil {
		return err
	}
	if want != nil && len(entries) != len(want) {
		return fmt.Errorf("pack %s: %w: %d entries, wrote %d", id.Short(), ErrCorruptPack, len(entries), len(want))
	}
	for i, e := range entries {
		if want != nil && e != want[i] {
			return fmt.Errorf("pack %s: %w: entry %d differs from what was written", id.Short(), ErrCorruptPack, i)
		}
		plain, err := r.OpenBlob(e, data[e.Offset:e.Offset+e.Length])
		if err != nil {
			return err
		}
		if got := hasher.Sum(plain); !bytes.Equal(got[:], e.ID[:]) {
			return fmt.Errorf("pack %s: %w: blob %s hashes to %s", id.Short(), ErrCorruptPack, e.ID.Short(), got.Short())
		}
	}
	return nil
}
