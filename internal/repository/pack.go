package repository

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	mrand "math/rand/v2"
	"os"
	"runtime"

	"github.com/coffer-backup/coffer/internal/bufpool"
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

// blobBufs holds buffers in which blobs are encoded and sealed in place
// (encodeBlob), a few per core: one per blob being encoded, and some for
// tree and small-file blobs; each grows to the largest blob it has held.
var blobBufs = bufpool.NewList(2*runtime.GOMAXPROCS(0) + 2)

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

// blobBufSize is the buffer encodeBlob needs for n bytes of plaintext.
func blobBufSize(n int) int { return crypto.Overhead + 1 + n }

// encodeBlob compresses a blob's plaintext into the payload a blob segment
// seals (encoding byte, then raw or zstd bytes), laid out in buf's backing
// array (a new one if it is too small) so that it can be sealed in place:
// crypto.NonceSize bytes of room, the payload, then room for the tag. It
// returns the buffer and the payload's length. It needs no pack, so callers
// run it concurrently before taking a pack writer.
func encodeBlob(buf, plaintext []byte, mode compress.Mode) ([]byte, int, error) {
	if len(plaintext) > MaxBlobSize {
		return nil, 0, fmt.Errorf("blob of %d bytes exceeds the maximum %d", len(plaintext), MaxBlobSize)
	}
	need := blobBufSize(len(plaintext))
	if cap(buf) < need {
		buf = make([]byte, need, bufpool.Round(need))
	}
	buf = buf[:need]
	body := buf[crypto.NonceSize+1:]
	out, compressed := compress.Compress(body[:0], plaintext, mode)
	if compressed {
		// Smaller than the plaintext, so it fits even if the encoder
		// had to move it.
		if &out[0] != &body[0] {
			copy(body, out)
		}
		buf[crypto.NonceSize] = encodingZstd
		return buf, 1 + len(out), nil
	}
	buf[crypto.NonceSize] = encodingRaw
	copy(body, plaintext)
	return buf, 1 + len(plaintext), nil
}

// Add compresses and seals a blob whose ID the caller computed.
func (w *PackWriter) Add(t BlobType, id ID, plaintext []byte) error {
	buf, n, err := encodeBlob(blobBufs.Get(blobBufSize(len(plaintext))), plaintext, w.mode)
	if err != nil {
		return err
	}
	defer blobBufs.Put(buf)
	return w.addEncoded(t, id, buf, n, len(plaintext))
}

// addEncoded seals, in place, the n-byte payload encodeBlob laid out in buf
// and appends it to the spill file; buf is not kept. An error (the spill
// file could not be written) is sticky: the pack is lost.
func (w *PackWriter) addEncoded(t BlobType, id ID, buf []byte, n, rawLen int) error {
	if w.err != nil {
		return w.err
	}
	if w.spill == nil {
		f, err := os.CreateTemp("", "coffer-pack-*")
		if err != nil {
			w.err = spillError(w.ID, err)
			return w.err
		}
		// Unlinked at once: nothing is left behind, whatever happens to us.
		// The file holds only sealed segments.
		if err := os.Remove(f.Name()); err != nil {
			_ = f.Close()
			w.err = spillError(w.ID, err)
			return w.err
		}
		w.spill, w.w = f, bufio.NewWriterSize(f, spillBufSize)
	}
	sealed := w.sealer.SealInPlace(buf, n, blobContext(t, id))
	if _, err := w.w.Write(sealed); err != nil {
		w.err = spillError(w.ID, err)
		return w.err
	}
	sealedLen := len(sealed)
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

// spillError explains a failure of the spill file, which lives in the
// temporary directory rather than the repository, so the user knows which
// disk is full.
func spillError(pack ID, err error) error {
	return fmt.Errorf("pack %s: temporary spill file in %s (set TMPDIR to move it): %w", pack.Short(), os.TempDir(), err)
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

// finishStream lays the blobs out in random order and seals the padded
// directory, leaving the blobs in the spill file: the returned pack streams
// them from there. The writer cannot be used afterwards; the pack owns the
// spill file and must be closed.
func (w *PackWriter) finishStream() (*finishedPack, error) {
	spill := w.spill
	w.spill = nil // the pack owns it now
	fail := func(err error) (*finishedPack, error) {
		if spill != nil {
			_ = spill.Close()
		}
		return nil, err
	}
	defer w.closeSpill()
	if w.err != nil {
		return fail(w.err)
	}
	if w.w != nil {
		if err := w.w.Flush(); err != nil {
			return fail(spillError(w.ID, err))
		}
	}
	if _, err := packUint32(w.size, "bytes"); err != nil {
		return fail(err)
	}
	count, err := packUint32(len(w.blobs), "blobs")
	if err != nil {
		return fail(err)
	}
	// Random layout: entries[k] is the k-th blob in the pack, and from[k]
	// is where its sealed segment lies in the spill file.
	perm := mrand.Perm(len(w.blobs)) // #nosec G404 -- math/rand/v2 draws from a ChaCha8 stream seeded by the OS; a layout is not a key
	entries := make([]PackEntry, len(w.blobs))
	from := make([]int64, len(w.blobs))
	off := crypto.HeaderSize
	for k, i := range perm {
		entries[k] = w.blobs[i]
		entries[k].Offset = uint32(off) // #nosec G115 -- off < w.size, checked above
		from[k] = int64(w.blobs[i].Offset)
		off += int(w.blobs[i].Length)
	}
	dirLen := 1 + 4 + len(entries)*packEntrySize
	unpadded := int64(w.size + dirLen + crypto.Overhead + 4)
	total := padding.Padme(unpadded)
	if total > 1<<32-1 {
		return fail(fmt.Errorf("pack too large: %d bytes", total))
	}
	dir := make([]byte, 0, int64(dirLen)+total-unpadded)
	dir = append(dir, 1)
	dir = binary.BigEndian.AppendUint32(dir, count)
	for _, e := range entries {
		dir = e.encode(dir)
	}
	dir = dir[:cap(dir)] // zero padding up to the Padmé length
	tail := w.sealer.Seal(make([]byte, 0, len(dir)+crypto.Overhead+4), dir, dirContext)
	sealedDir, err := packUint32(len(tail), "directory bytes")
	if err != nil {
		return fail(err)
	}
	tail = binary.BigEndian.AppendUint32(tail, sealedDir)
	if int64(w.size+len(tail)) != total {
		return fail(fmt.Errorf("pack %s: %d bytes, want %d", w.ID.Short(), w.size+len(tail), total))
	}
	return &finishedPack{
		id: w.ID, entries: entries, from: from,
		head: w.header.Marshal(), tail: tail, size: total, spill: spill,
	}, nil
}

// closeSpill ends the writer after finishStream, which has handed the spill
// file to the finished pack or closed it.
func (w *PackWriter) closeSpill() {
	w.w = nil // the spill file itself went to the finished pack
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
