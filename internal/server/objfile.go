package server

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"sync"
	"time"
)

// The at-rest object file, version 1 (docs/protocol.md, "At rest"). All
// integers big-endian.
//
//	header (164 bytes):
//	  0  8  magic "coffsrv\x00"
//	  8  1  version (1)
//	  9  3  zero
//	 12  4  segment size (1 MiB)
//	 16  4  key term (1)
//	 20  8  content size in bytes
//	 28  8  received: Unix nanoseconds of the upload's commit
//	 36 32  salt, random per object
//	 68 32  SHA-256 of the content (the client's bytes)
//	100 32  SHA-256 of the segment table
//	132 32  HMAC-SHA-256(macKey, header[0:132] || identity)
//	segment table: SHA-256 of each sealed segment, 32 bytes each
//	sealed segments: AES-256-GCM(encKey, nonce = 0^4 || index, segment,
//	  AAD = "coffer-server/v1/segment" || identity || size || index || final)
//
// encKey and macKey are HKDF-SHA-256 of the server's at-rest key with the
// object's salt, so every object has its own keys and the counter nonce is
// never reused. identity is the client, repository, kind and name, each a
// 2-byte length and the bytes: an object moved to another path no longer
// opens. Every object has at least one segment; the last one is flagged
// final, and the size is in every segment's AAD, so truncation, extension
// and reordering all fail authentication.
const (
	objMagic     = "coffsrv\x00"
	objVersion   = 1
	segmentSize  = 1 << 20
	keyTerm      = 1
	headerSize   = 164
	macOffset    = 132
	tagSize      = 16
	hashSize     = sha256.Size
	perSegment   = tagSize + hashSize // stored overhead of each segment
	maxSegments  = 1 << 32
	atRestKeyLen = 32
)

const (
	infoEncKey = "coffer-server/v1/at-rest/enc"
	infoMacKey = "coffer-server/v1/at-rest/mac"
	aadPrefix  = "coffer-server/v1/segment"
)

// ErrCorrupt is wrapped by every error of an object file that does not
// verify: bit rot, truncation, tampering, or a file moved to another name.
var ErrCorrupt = errors.New("stored object is damaged")

// objectID names a stored object: whose, where and what it is.
type objectID struct {
	Client, Repo, Kind, Name string
}

func (id objectID) String() string {
	return id.Client + "/" + id.Repo + "/" + id.Kind + "/" + id.Name
}

func (id objectID) encode() []byte {
	var b []byte
	for _, s := range []string{id.Client, id.Repo, id.Kind, id.Name} {
		b = binary.BigEndian.AppendUint16(b, uint16(len(s))) // #nosec G115 -- names are validated to at most 128 bytes
		b = append(b, s...)
	}
	return b
}

// numSegments is the number of segments of a size-byte object.
func numSegments(size int64) int64 {
	if size <= 0 {
		return 1
	}
	return (size + segmentSize - 1) / segmentSize
}

// storedSize is the file size of an object of size content bytes.
func storedSize(size int64) int64 {
	return headerSize + perSegment*numSegments(size) + size
}

// contentSize inverts storedSize; ok is false for file sizes no object has.
func contentSize(stored int64) (size int64, ok bool) {
	rest := stored - headerSize
	if rest < perSegment {
		return 0, false
	}
	full := rest / (segmentSize + perSegment)
	rem := rest % (segmentSize + perSegment)
	switch {
	case rem == 0:
		size = full * segmentSize
	case rem >= perSegment && (rem > perSegment || full == 0):
		size = full*segmentSize + rem - perSegment
	default:
		return 0, false
	}
	return size, storedSize(size) == stored
}

// objectKeys are an object's derived keys.
type objectKeys struct {
	aead   cipher.AEAD
	macKey []byte
}

func deriveKeys(master *[atRestKeyLen]byte, salt []byte) (*objectKeys, error) {
	enc, err := hkdf.Key(sha256.New, master[:], salt, infoEncKey, 32)
	if err != nil {
		return nil, err
	}
	mac, err := hkdf.Key(sha256.New, master[:], salt, infoMacKey, 32)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(enc)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &objectKeys{aead: aead, macKey: mac}, nil
}

func segmentNonce(i int64) []byte {
	n := make([]byte, 12)
	binary.BigEndian.PutUint64(n[4:], uint64(i)) // #nosec G115 -- i < maxSegments
	return n
}

func segmentAAD(id []byte, size, i int64, final bool) []byte {
	b := make([]byte, 0, len(aadPrefix)+len(id)+13)
	b = append(b, aadPrefix...)
	b = append(b, id...)
	b = binary.BigEndian.AppendUint64(b, uint64(size)) // #nosec G115 -- size >= 0
	b = binary.BigEndian.AppendUint32(b, uint32(i))    // #nosec G115 -- i < maxSegments
	if final {
		return append(b, 1)
	}
	return append(b, 0)
}

func headerMAC(macKey, header, id []byte) []byte {
	m := hmac.New(sha256.New, macKey)
	m.Write(header[:macOffset])
	m.Write(id)
	return m.Sum(nil)
}

// objectHeader is the decoded header.
type objectHeader struct {
	Size        int64
	Received    time.Time
	Salt        [32]byte
	ContentHash [32]byte
	TableHash   [32]byte
}

func (h *objectHeader) encode(macKey, id []byte) []byte {
	b := make([]byte, headerSize)
	copy(b, objMagic)
	b[8] = objVersion
	binary.BigEndian.PutUint32(b[12:], segmentSize)
	binary.BigEndian.PutUint32(b[16:], keyTerm)
	binary.BigEndian.PutUint64(b[20:], uint64(h.Size))                // #nosec G115 -- size >= 0
	binary.BigEndian.PutUint64(b[28:], uint64(h.Received.UnixNano())) // #nosec G115 -- a time after 1970
	copy(b[36:], h.Salt[:])
	copy(b[68:], h.ContentHash[:])
	copy(b[100:], h.TableHash[:])
	copy(b[macOffset:], headerMAC(macKey, b, id))
	return b
}

// parseHeader decodes the fixed fields of b without checking its MAC (the
// keys come from the salt inside it); the caller checks the MAC next.
func parseHeader(b []byte) (*objectHeader, error) {
	if len(b) != headerSize {
		return nil, fmt.Errorf("%w: header of %d bytes", ErrCorrupt, len(b))
	}
	if string(b[:8]) != objMagic {
		return nil, fmt.Errorf("%w: bad magic", ErrCorrupt)
	}
	if b[8] != objVersion || b[9]|b[10]|b[11] != 0 {
		return nil, fmt.Errorf("%w: unknown version %d", ErrCorrupt, b[8])
	}
	if binary.BigEndian.Uint32(b[12:]) != segmentSize || binary.BigEndian.Uint32(b[16:]) != keyTerm {
		return nil, fmt.Errorf("%w: unknown segment size or key term", ErrCorrupt)
	}
	size := binary.BigEndian.Uint64(b[20:])
	if size > 1<<62 {
		return nil, fmt.Errorf("%w: size %d", ErrCorrupt, size)
	}
	h := &objectHeader{Size: int64(size), Received: time.Unix(0, int64(binary.BigEndian.Uint64(b[28:]))).UTC()} // #nosec G115 -- checked above; any time decodes
	copy(h.Salt[:], b[36:])
	copy(h.ContentHash[:], b[68:])
	copy(h.TableHash[:], b[100:])
	return h, nil
}

// sealObject reads exactly size bytes from r and writes the object file to
// f (an empty temporary file). The content is checked against wantHash
// when it is not nil. It returns the header written.
func sealObject(f *os.File, master *[atRestKeyLen]byte, id objectID, size int64, r io.Reader, wantHash []byte, received time.Time) (*objectHeader, error) {
	h := &objectHeader{Size: size, Received: received}
	if _, err := rand.Read(h.Salt[:]); err != nil {
		return nil, fmt.Errorf("object salt: %w", err)
	}
	keys, err := deriveKeys(master, h.Salt[:])
	if err != nil {
		return nil, err
	}
	idb := id.encode()
	nseg := numSegments(size)
	if nseg >= maxSegments {
		return nil, fmt.Errorf("object of %d bytes is too large", size)
	}
	table := make([]byte, 0, nseg*hashSize)
	content := sha256.New()
	plainBuf, sealedBuf := getBuf(size), getBuf(size)
	defer putBuf(plainBuf)
	defer putBuf(sealedBuf)
	plain := (*plainBuf)[:min(size, segmentSize)]
	sealed := (*sealedBuf)[:0]
	off := headerSize + nseg*hashSize
	for i, left := int64(0), size; i < nseg; i++ {
		n := min(left, segmentSize)
		if _, err := io.ReadFull(r, plain[:n]); err != nil {
			return nil, fmt.Errorf("read upload: %w", err)
		}
		left -= n
		content.Write(plain[:n])
		sealed = keys.aead.Seal(sealed[:0], segmentNonce(i), plain[:n], segmentAAD(idb, size, i, i == nseg-1))
		sum := sha256.Sum256(sealed)
		table = append(table, sum[:]...)
		if _, err := f.WriteAt(sealed, off); err != nil {
			return nil, err
		}
		off += int64(len(sealed))
	}
	// The declared length was read; anything more is a broken request.
	var one [1]byte
	if n, err := r.Read(one[:]); n > 0 || (err != nil && !errors.Is(err, io.EOF)) {
		if err == nil {
			err = errors.New("more bytes than declared")
		}
		return nil, fmt.Errorf("read upload: %w", err)
	}
	copy(h.ContentHash[:], content.Sum(nil))
	if wantHash != nil && !hmac.Equal(wantHash, h.ContentHash[:]) {
		return nil, errDigestMismatch
	}
	h.TableHash = sha256.Sum256(table)
	if _, err := f.WriteAt(append(h.encode(keys.macKey, idb), table...), 0); err != nil {
		return nil, err
	}
	return h, nil
}

var errDigestMismatch = errors.New("content does not match the digest sent with it")

// objectReader reads a stored object, verifying as it goes.
type objectReader struct {
	f      *os.File
	id     []byte
	hdr    *objectHeader
	keys   *objectKeys
	nseg   int64
	table  []byte  // nil until loadTable
	sealed *[]byte // from getBuf; returned by Close
}

// openObject checks the header of the object file f (its MAC and that the
// file size is the one the header implies) and returns a reader. It does
// not close f on error.
func openObject(f *os.File, master *[atRestKeyLen]byte, id objectID) (*objectReader, error) {
	b := make([]byte, headerSize)
	if _, err := f.ReadAt(b, 0); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%w: %s: shorter than a header", ErrCorrupt, id)
		}
		return nil, err
	}
	hdr, err := parseHeader(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", id, err)
	}
	keys, err := deriveKeys(master, hdr.Salt[:])
	if err != nil {
		return nil, err
	}
	idb := id.encode()
	if !hmac.Equal(b[macOffset:], headerMAC(keys.macKey, b, idb)) {
		return nil, fmt.Errorf("%w: %s: header does not authenticate", ErrCorrupt, id)
	}
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if fi.Size() != storedSize(hdr.Size) {
		return nil, fmt.Errorf("%w: %s: file has %d bytes, header implies %d", ErrCorrupt, id, fi.Size(), storedSize(hdr.Size))
	}
	return &objectReader{f: f, id: idb, hdr: hdr, keys: keys, nseg: numSegments(hdr.Size)}, nil
}

// loadTable reads the segment table and checks it against the header.
func (o *objectReader) loadTable() error {
	if o.table != nil {
		return nil
	}
	t := make([]byte, o.nseg*hashSize)
	if _, err := o.f.ReadAt(t, headerSize); err != nil {
		return err
	}
	if sum := sha256.Sum256(t); !hmac.Equal(sum[:], o.hdr.TableHash[:]) {
		return fmt.Errorf("%w: segment table does not match its hash", ErrCorrupt)
	}
	o.table = t
	return nil
}

// segment returns the content of segment i, appended to dst, after
// checking the stored bytes against the table and the GCM tag.
func (o *objectReader) segment(dst []byte, i int64) ([]byte, error) {
	if err := o.loadTable(); err != nil {
		return nil, err
	}
	n := min(o.hdr.Size-i*segmentSize, segmentSize)
	if n < 0 {
		n = 0
	}
	if o.sealed == nil {
		o.sealed = getBuf(o.hdr.Size)
	}
	sealed := (*o.sealed)[:n+tagSize]
	off := headerSize + o.nseg*hashSize + i*(segmentSize+tagSize)
	if _, err := o.f.ReadAt(sealed, off); err != nil {
		return nil, err
	}
	if sum := sha256.Sum256(sealed); !hmac.Equal(sum[:], o.table[i*hashSize:(i+1)*hashSize]) {
		return nil, fmt.Errorf("%w: segment %d does not match its hash", ErrCorrupt, i)
	}
	out, err := o.keys.aead.Open(dst, segmentNonce(i), sealed, segmentAAD(o.id, o.hdr.Size, i, i == o.nseg-1))
	if err != nil {
		return nil, fmt.Errorf("%w: segment %d does not authenticate", ErrCorrupt, i)
	}
	return out, nil
}

// writeRange writes length content bytes from offset to w, decrypting only
// the segments the range touches, each checked against its hash and tag.
// offset and length must lie within the object.
func (o *objectReader) writeRange(w io.Writer, offset, length int64) error {
	return o.copyRange(w, offset, length, false)
}

// copyRange is writeRange; checkContent also checks the content hash (the
// segment tags already authenticate the content: this is for Scrub).
func (o *objectReader) copyRange(w io.Writer, offset, length int64, checkContent bool) error {
	var content hash.Hash
	if checkContent {
		content = sha256.New()
	}
	bp := getBuf(o.hdr.Size)
	defer putBuf(bp)
	buf := (*bp)[:0]
	end := offset + length
	first := offset / segmentSize
	if length == 0 {
		// Still authenticate the segment the empty range sits in.
		_, err := o.segment(buf, min(first, o.nseg-1))
		return err
	}
	for i := first; i*segmentSize < end; i++ {
		seg, err := o.segment(buf[:0], i)
		if err != nil {
			return err
		}
		if content != nil {
			content.Write(seg)
		}
		lo := max(offset-i*segmentSize, 0)
		hi := min(end-i*segmentSize, int64(len(seg)))
		if _, err := w.Write(seg[lo:hi]); err != nil {
			return &writeError{err}
		}
	}
	if content != nil && !hmac.Equal(content.Sum(nil), o.hdr.ContentHash[:]) {
		return fmt.Errorf("%w: content does not match its hash", ErrCorrupt)
	}
	return nil
}

// verify checks every segment and the content hash, as Scrub does.
func (o *objectReader) verify() error {
	return o.copyRange(io.Discard, 0, o.hdr.Size, true)
}

// Segment buffers: objects of at least a segment share pooled buffers of
// a segment and a tag; smaller ones get buffers of their own size.
var segPool = sync.Pool{New: func() any { b := make([]byte, segmentSize+tagSize); return &b }}

func getBuf(size int64) *[]byte {
	if size >= segmentSize {
		return segPool.Get().(*[]byte)
	}
	b := make([]byte, size+tagSize)
	return &b
}

func putBuf(b *[]byte) {
	if b != nil && cap(*b) == segmentSize+tagSize {
		segPool.Put(b)
	}
}

// writeError marks a failure to send, as opposed to a failure to read.
type writeError struct{ err error }

func (e *writeError) Error() string { return "send: " + e.err.Error() }
func (e *writeError) Unwrap() error { return e.err }
