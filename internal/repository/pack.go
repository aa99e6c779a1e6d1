package repository

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	mrand "math/rand/v2"
	"os"
	"sync"

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

// PackWriter assembles one pack. Sealed blobs are spilled to an unlinked
// temporary file as they arrive, so a pack that fills costs no memory; Finish
// reads them back in random order into the finished pack. It is not safe for
// concurrent use.
type PackWriter struct {
	ID     ID
	header crypto.Header
	sealer *crypto.FileSealer
	blobs  []PackEntry // Offset: in the spill file, until Finish
	size   int         // header plus sealed blobs
	mode   compress.Mode

	spill   *os.File
	w       *bufio.Writer
	spilled int
	err     error // sticky spill error
}

// sealBufs holds scratch buffers for sealing a blob before it is spilled.
var sealBufs = sync.Pool{New: func() any { return new([]byte) }}

// spillBufSize is the write buffer in front of the spill file.
const spillBufSize = 256 << 10

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
	return w.AddEncoded(t, id, payload, len(plaintext))
}

// AddEncoded seals a payload made by EncodeBlob. The payload is not kept.
// An error (the spill file could not be written) is sticky: the pack is lost.
func (w *PackWriter) AddEncoded(t BlobType, id ID, payload []byte, rawLen int) error {
	if w.err != nil {
		return w.err
	}
	if w.spill == nil {
		f, err := os.CreateTemp("", "coffer-pack-*")
		if err != nil {
			w.err = fmt.Errorf("pack %s: spill file: %w", w.ID.Short(), err)
			return w.err
		}
		// Unlinked at once: nothing is left behind, whatever happens to us.
		// The file holds only sealed segments.
		if err := os.Remove(f.Name()); err != nil {
			_ = f.Close()
			w.err = fmt.Errorf("pack %s: spill file: %w", w.ID.Short(), err)
			return w.err
		}
		w.spill, w.w = f, bufio.NewWriterSize(f, spillBufSize)
	}
	bp := sealBufs.Get().(*[]byte)
	*bp = w.sealer.Seal((*bp)[:0], payload, blobContext(t, id))
	_, err := w.w.Write(*bp)
	sealBufs.Put(bp)
	if err != nil {
		w.err = fmt.Errorf("pack %s: spill: %w", w.ID.Short(), err)
		return w.err
	}
	sealedLen := len(payload) + crypto.Overhead
	w.blobs = append(w.blobs, PackEntry{
		Type: t, ID: id,
		Offset: uint32(w.spilled), // #nosec G115 -- the spill is checked against the 4 GiB limit in Finish
		Length: uint32(sealedLen), // #nosec G115 -- bounded by MaxBlobSize
		RawLen: uint32(rawLen),    // #nosec G115 -- bounded by MaxBlobSize
	})
	w.spilled += sealedLen
	w.size += sealedLen
	return nil
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
// and returns the pack bytes and its entries (with offsets filled in). The
// writer cannot be used afterwards.
func (w *PackWriter) Finish() ([]byte, []PackEntry, error) {
	return w.finish(nil)
}

// finish is Finish building the pack in buf's backing array when it is
// large enough.
func (w *PackWriter) finish(buf []byte) ([]byte, []PackEntry, error) {
	defer w.closeSpill()
	if w.err != nil {
		return nil, nil, w.err
	}
	if _, err := packUint32(w.size, "bytes"); err != nil {
		return nil, nil, err
	}
	count, err := packUint32(len(w.blobs), "blobs")
	if err != nil {
		return nil, nil, err
	}
	// Random layout: entries[k] is the k-th blob in the pack; dst[i] is
	// where the i-th blob to arrive goes.
	perm := mrand.Perm(len(w.blobs)) // #nosec G404 -- math/rand/v2 draws from a ChaCha8 stream seeded by the OS; a layout is not a key
	entries := make([]PackEntry, len(w.blobs))
	dst := make([]int, len(w.blobs)) // by arrival: offset in the pack
	off := crypto.HeaderSize
	for k, i := range perm {
		entries[k] = w.blobs[i]
		entries[k].Offset = uint32(off) // #nosec G115 -- off < w.size, checked above
		dst[i] = off
		off += int(w.blobs[i].Length)
	}
	dirLen := 1 + 4 + len(entries)*packEntrySize
	unpadded := int64(w.size + dirLen + crypto.Overhead + 4)
	total := padding.Padme(unpadded)
	if total > 1<<32-1 {
		return nil, nil, fmt.Errorf("pack too large: %d bytes", total)
	}
	out := buf[:0]
	if int64(cap(out)) < total {
		out = make([]byte, 0, total)
	}
	out = append(out, w.header.Marshal()...)
	out = out[:w.size]
	if err := w.scatter(out, dst); err != nil {
		return nil, nil, err
	}
	dir := make([]byte, 0, int64(dirLen)+total-unpadded)
	dir = append(dir, 1)
	dir = binary.BigEndian.AppendUint32(dir, count)
	for _, e := range entries {
		dir = e.encode(dir)
	}
	dir = dir[:cap(dir)] // zero padding up to the Padmé length
	out = w.sealer.Seal(out, dir, dirContext)
	sealedDir, err := packUint32(len(out)-w.size, "directory bytes")
	if err != nil {
		return nil, nil, err
	}
	out = binary.BigEndian.AppendUint32(out, sealedDir)
	if int64(len(out)) != total {
		return nil, nil, fmt.Errorf("pack %s: %d bytes, want %d", w.ID.Short(), len(out), total)
	}
	return out, entries, nil
}

// scatter reads the spill file sequentially and copies every blob to its
// offset dst[i] in out.
func (w *PackWriter) scatter(out []byte, dst []int) error {
	if w.spilled == 0 {
		return nil
	}
	if err := w.w.Flush(); err != nil {
		return fmt.Errorf("pack %s: spill: %w", w.ID.Short(), err)
	}
	chunk := make([]byte, min(w.spilled, spillBufSize))
	i := 0 // first blob not yet completely copied
	for pos := 0; pos < w.spilled; {
		n := min(len(chunk), w.spilled-pos)
		if _, err := w.spill.ReadAt(chunk[:n], int64(pos)); err != nil {
			return fmt.Errorf("pack %s: read back spill: %w", w.ID.Short(), err)
		}
		for ; i < len(w.blobs); i++ {
			b := w.blobs[i]
			start, end := int(b.Offset), int(b.Offset)+int(b.Length)
			lo, hi := max(start, pos), min(end, pos+n)
			if lo < hi {
				copy(out[dst[i]+lo-start:], chunk[lo-pos:hi-pos])
			}
			if end > pos+n {
				break // continues in the next chunk
			}
		}
		pos += n
	}
	return nil
}

func (w *PackWriter) closeSpill() {
	if w.spill != nil {
		_ = w.spill.Close()
		w.spill, w.w = nil, nil
	}
	if w.err == nil {
		w.err = errors.New("pack writer already finished")
	}
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
	out, _, err := r.openBlob(e, sealed, nil, nil)
	return out, err
}

// openBlob is OpenBlob decrypting into plainBuf's backing array and
// decompressing into outBuf's when they are large enough. To decrypt in
// place, destroying sealed, pass sealed[crypto.NonceSize:crypto.NonceSize]
// as plainBuf. It also returns the decrypted payload, for reuse as scratch.
func (r *PackReader) openBlob(e PackEntry, sealed, plainBuf, outBuf []byte) (out, plain []byte, err error) {
	p, err := r.sealer.Open(plainBuf, sealed, blobContext(e.Type, e.ID))
	if err != nil {
		return nil, nil, fmt.Errorf("blob %s in pack %s: %w", e.ID.Short(), r.ID.Short(), err)
	}
	if len(p) < 1 {
		return nil, p, fmt.Errorf("blob %s: %w: empty segment", e.ID.Short(), ErrCorruptPack)
	}
	switch p[0] {
	case encodingRaw:
		out = p[1:]
	case encodingZstd:
		out, err = compress.Decompress(outBuf[:0], p[1:], int(e.RawLen))
		if err != nil {
			return nil, p, fmt.Errorf("blob %s in pack %s: decompress: %w", e.ID.Short(), r.ID.Short(), err)
		}
	default:
		return nil, p, fmt.Errorf("blob %s: %w: unknown encoding %d", e.ID.Short(), ErrCorruptPack, p[0])
	}
	if len(out) != int(e.RawLen) {
		return nil, p, fmt.Errorf("blob %s: %w: length %d, index says %d", e.ID.Short(), ErrCorruptPack, len(out), e.RawLen)
	}
	return out, p, nil
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
	// One blob at a time through two scratch buffers: the check must not
	// hold a second copy of the pack.
	var plainBuf, outBuf []byte
	for i, e := range entries {
		if want != nil && e != want[i] {
			return fmt.Errorf("pack %s: %w: entry %d differs from what was written", id.Short(), ErrCorruptPack, i)
		}
		plain, p, err := r.openBlob(e, data[e.Offset:e.Offset+e.Length], plainBuf[:0], outBuf[:0])
		if err != nil {
			return err
		}
		if cap(p) > cap(plainBuf) {
			plainBuf = p
		}
		if len(plain) > 0 && cap(plain) > cap(outBuf) && (len(p) < 2 || &plain[0] != &p[1]) {
			outBuf = plain
		}
		if got := hasher.Sum(plain); !bytes.Equal(got[:], e.ID[:]) {
			return fmt.Errorf("pack %s: %w: blob %s hashes to %s", id.Short(), ErrCorruptPack, e.ID.Short(), got.Short())
		}
	}
	return nil
}
