package atrest

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"sync"
	"time"
)

// The sealed object, version 1 (docs/protocol.md, "At rest"). All integers
// big-endian.
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
// 2-byte length and the bytes: an object moved to another name no longer
// opens. Every object has at least one segment; the last one is flagged
// final, and the size is in every segment's AAD, so truncation, extension
// and reordering all fail authentication.
const (
	objMagic    = "coffsrv\x00"
	objVersion  = 1
	segmentSize = 1 << 20
	keyTerm     = 1
	// HeaderSize is the size of a sealed object's fixed header.
	HeaderSize  = 164
	macOffset   = 132
	tagSize     = 16
	hashSize    = sha256.Size
	perSegment  = tagSize + hashSize // stored overhead of each segment
	maxSegments = 1 << 32
)

const (
	infoEncKey = "coffer-server/v1/at-rest/enc"
	infoMacKey = "coffer-server/v1/at-rest/mac"
	aadPrefix  = "coffer-server/v1/segment"
)

// identity encodes whose, where and what an object is, for the header MAC
// and every segment's AAD.
func identity(client, repo, kind, name string) []byte {
	var b []byte
	for _, s := range []string{client, repo, kind, name} {
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

// StoredSize is the sealed size of an object of size content bytes.
func StoredSize(size int64) int64 {
	return HeaderSize + perSegment*numSegments(size) + size
}

// ContentSize inverts StoredSize; ok is false for sizes no sealed object has.
func ContentSize(stored int64) (size int64, ok bool) {
	rest := stored - HeaderSize
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
	return size, StoredSize(size) == stored
}

// objectKeys are an object's derived keys.
type objectKeys struct {
	aead   cipher.AEAD
	macKey []byte
}

func deriveKeys(master *Key, salt []byte) (*objectKeys, error) {
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

// header is the decoded fixed header.
type header struct {
	Size        int64
	Received    time.Time
	Salt        [32]byte
	ContentHash [32]byte
	TableHash   [32]byte
}

func (h *header) encode(macKey, id []byte) []byte {
	b := make([]byte, HeaderSize)
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
func parseHeader(b []byte) (*header, error) {
	if len(b) != HeaderSize {
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
	h := &header{Size: int64(size), Received: time.Unix(0, int64(binary.BigEndian.Uint64(b[28:]))).UTC()} // #nosec G115 -- checked above; any time decodes
	copy(h.Salt[:], b[36:])
	copy(h.ContentHash[:], b[68:])
	copy(h.TableHash[:], b[100:])
	return h, nil
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
