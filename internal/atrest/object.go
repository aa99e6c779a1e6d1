package atrest

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"time"

	"github.com/coffer-backup/coffer/internal/storage"
)

// Object is a stored object whose header and segment table have been
// authenticated; its content is read segment by segment from the base.
type Object struct {
	s     *Storage
	h     storage.Handle
	id    []byte
	hdr   *header
	keys  *objectKeys
	nseg  int64
	table []byte
}

// Open authenticates the header and the segment table of h and checks that
// the stored size is the one the header implies. A missing object fails
// with the base's storage.ErrNotFound; anything that does not verify with
// ErrCorrupt.
func (s *Storage) Open(ctx context.Context, h storage.Handle) (*Object, error) {
	if err := storage.ValidateHandle(h); err != nil {
		return nil, err
	}
	b, stored, err := s.loadHead(ctx, h)
	if err != nil {
		return nil, err
	}
	size, ok := ContentSize(stored)
	if !ok {
		return nil, fmt.Errorf("%w: %s: %d stored bytes are no sealed object's size", ErrCorrupt, h, stored)
	}
	nseg := numSegments(size)
	if need := HeaderSize + nseg*hashSize; int64(len(b)) >= need {
		b = b[:need]
	} else {
		b, err = s.base.Load(ctx, h, 0, need)
	}
	if errors.Is(err, storage.ErrRange) {
		return nil, fmt.Errorf("%w: %s: shorter than its header and table", ErrCorrupt, h)
	}
	if err != nil {
		return nil, err
	}
	hdr, err := parseHeader(b[:HeaderSize])
	if err != nil {
		return nil, fmt.Errorf("%s: %w", h, err)
	}
	keys, err := deriveKeys(s.key, hdr.Salt[:])
	if err != nil {
		return nil, err
	}
	id := s.identity(h)
	if !hmac.Equal(b[macOffset:HeaderSize], headerMAC(keys.macKey, b, id)) {
		return nil, fmt.Errorf("%w: %s: header does not authenticate", ErrCorrupt, h)
	}
	if hdr.Size != size {
		return nil, fmt.Errorf("%w: %s: %d stored bytes, header implies %d", ErrCorrupt, h, stored, StoredSize(hdr.Size))
	}
	table := b[HeaderSize:]
	if sum := sha256.Sum256(table); !hmac.Equal(sum[:], hdr.TableHash[:]) {
		return nil, fmt.Errorf("%w: %s: segment table does not match its hash", ErrCorrupt, h)
	}
	return &Object{s: s, h: h, id: id, hdr: hdr, keys: keys, nseg: nseg, table: table}, nil
}

// prefixLoader is a base that returns an object's first bytes with its
// size in one request (the s3 backend), saving the Stat a remote base
// pays a round trip for.
type prefixLoader interface {
	LoadPrefix(ctx context.Context, h storage.Handle, n int64) ([]byte, int64, error)
}

// headGuess is how much of an object loadHead reads at once: the header
// and the segment table of objects up to 64 segments (64 MiB, the
// server's default largest object); larger ones need a second read.
const headGuess = HeaderSize + 64*hashSize

// loadHead returns h's stored size and, from a prefixLoader, its first
// bytes (nil from any other base, which Stat tells the size).
func (s *Storage) loadHead(ctx context.Context, h storage.Handle) ([]byte, int64, error) {
	if pl, ok := s.base.(prefixLoader); ok {
		return pl.LoadPrefix(ctx, h, headGuess)
	}
	fi, err := s.base.Stat(ctx, h)
	return nil, fi.Size, err
}

// Size is the content size.
func (o *Object) Size() int64 { return o.hdr.Size }

// Received is the time recorded when the object was stored.
func (o *Object) Received() time.Time { return o.hdr.Received }

// ContentSHA256 is the SHA-256 of the content, as recorded when stored.
func (o *Object) ContentSHA256() [32]byte { return o.hdr.ContentHash }

// segment returns the content of segment i, appended to dst, after
// checking the stored bytes against the table and the GCM tag.
func (o *Object) segment(ctx context.Context, dst []byte, i int64) ([]byte, error) {
	n := max(min(o.hdr.Size-i*segmentSize, segmentSize), 0)
	off := HeaderSize + o.nseg*hashSize + i*(segmentSize+tagSize)
	sealed, err := o.s.base.Load(ctx, o.h, off, n+tagSize)
	if errors.Is(err, storage.ErrRange) || errors.Is(err, storage.ErrNotFound) {
		return nil, fmt.Errorf("%w: %s: segment %d is gone: %v", ErrCorrupt, o.h, i, err)
	}
	if err != nil {
		return nil, err
	}
	if sum := sha256.Sum256(sealed); !hmac.Equal(sum[:], o.table[i*hashSize:(i+1)*hashSize]) {
		return nil, fmt.Errorf("%w: %s: segment %d does not match its hash", ErrCorrupt, o.h, i)
	}
	out, err := o.keys.aead.Open(dst, segmentNonce(i), sealed, segmentAAD(o.id, o.hdr.Size, i, i == o.nseg-1))
	if err != nil {
		return nil, fmt.Errorf("%w: %s: segment %d does not authenticate", ErrCorrupt, o.h, i)
	}
	return out, nil
}

// WriteRange writes length content bytes from offset to w, reading and
// authenticating only the segments the range touches, one at a time. The
// range must lie within the object (storage.ErrRange otherwise). An error
// of w is returned as it is; everything written before an error verified.
func (o *Object) WriteRange(ctx context.Context, w io.Writer, offset, length int64) error {
	if offset < 0 || length < 0 || offset > o.hdr.Size || length > o.hdr.Size-offset {
		return fmt.Errorf("%s: %d bytes at %d of %d: %w", o.h, length, offset, o.hdr.Size, storage.ErrRange)
	}
	return o.copyRange(ctx, w, offset, length, false)
}

// copyRange is WriteRange; checkContent also checks the content hash (the
// segment tags already authenticate the content: this is for Verify).
func (o *Object) copyRange(ctx context.Context, w io.Writer, offset, length int64, checkContent bool) error {
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
		_, err := o.segment(ctx, buf, min(first, o.nseg-1))
		return err
	}
	for i := first; i*segmentSize < end; i++ {
		seg, err := o.segment(ctx, buf[:0], i)
		if err != nil {
			return err
		}
		if content != nil {
			content.Write(seg)
		}
		lo := max(offset-i*segmentSize, 0)
		hi := min(end-i*segmentSize, int64(len(seg)))
		if _, err := w.Write(seg[lo:hi]); err != nil {
			return err
		}
	}
	if content != nil && !hmac.Equal(content.Sum(nil), o.hdr.ContentHash[:]) {
		return fmt.Errorf("%w: %s: content does not match its hash", ErrCorrupt, o.h)
	}
	return nil
}
