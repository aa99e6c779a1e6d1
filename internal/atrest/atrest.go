// Package atrest is a storage decorator that seals every object with the
// server's at-rest key, bound to its client, repository, kind and name.
package atrest

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"time"

	"github.com/coffer-backup/coffer/internal/storage"
)

// KeySize is the size of the at-rest key.
const KeySize = 32

// Key is the server's at-rest key.
type Key [KeySize]byte

// Sentinel errors; callers test with errors.Is.
var (
	// ErrCorrupt is wrapped by every error of a stored object that does not
	// verify: bit rot, truncation, tampering, a wrong key, or an object
	// moved to another name.
	ErrCorrupt = errors.New("stored object is damaged")
	// ErrDigestMismatch: the content of an upload is not the content its
	// Upload.WantSHA256 announced; nothing was stored.
	ErrDigestMismatch = errors.New("content does not match the digest sent with it")
)

// Namespace is whose and which repository a Storage's objects belong to;
// it is bound into every object, so objects do not open under another.
type Namespace struct {
	Client, Repo string
}

// Upload is an optional interface of the source given to SaveStream: a
// digest the content must have (nil: none) and the received time to record.
type Upload interface {
	io.WriterTo
	WantSHA256() []byte
	ReceivedAt() time.Time
}

// Storage seals the objects of one namespace into a base storage. It
// implements storage.Storage and storage.StreamSaver with the base's
// guarantees; Load and Stat report the content, never the sealed bytes.
type Storage struct {
	base storage.Storage
	key  *Key
	ns   Namespace
}

var (
	_ storage.Storage     = (*Storage)(nil)
	_ storage.StreamSaver = (*Storage)(nil)
)

// New returns a Storage sealing the objects of ns into base with key.
// Close closes base.
func New(base storage.Storage, key *Key, ns Namespace) *Storage {
	return &Storage{base: base, key: key, ns: ns}
}

// Location returns the base's location.
func (s *Storage) Location() string { return s.base.Location() }

// Close closes the base.
func (s *Storage) Close() error { return s.base.Close() }

func (s *Storage) identity(h storage.Handle) []byte {
	return identity(s.ns.Client, s.ns.Repo, string(h.Kind), h.Name)
}

// Save implements storage.Storage.
func (s *Storage) Save(ctx context.Context, h storage.Handle, data []byte) error {
	return s.SaveStream(ctx, h, bytes.NewReader(data), int64(len(data)))
}

// SaveStream implements storage.StreamSaver: src is sealed segment by
// segment as it is written. A base that writes into a file (an io.WriterAt)
// gets the segments in place and the header last; any other base gets the
// sealed object from memory. When src is an Upload, its digest is checked
// (ErrDigestMismatch) and its received time recorded; otherwise the time is
// now.
func (s *Storage) SaveStream(ctx context.Context, h storage.Handle, src io.WriterTo, size int64) error {
	if err := storage.ValidateHandle(h); err != nil {
		return fmt.Errorf("save: %w", err)
	}
	if size < 0 || numSegments(size) >= maxSegments {
		return fmt.Errorf("save %s: object of %d bytes is too large", h, size)
	}
	sealed := &sealedSource{s: s, h: h, src: src, size: size, received: time.Now()}
	if up, ok := src.(Upload); ok {
		sealed.want, sealed.received = up.WantSHA256(), up.ReceivedAt()
	}
	if ss, ok := s.base.(storage.StreamSaver); ok {
		return ss.SaveStream(ctx, h, sealed, StoredSize(size))
	}
	var buf bytes.Buffer
	if _, err := sealed.WriteTo(&buf); err != nil {
		return fmt.Errorf("save %s: %w", h, err)
	}
	return s.base.Save(ctx, h, buf.Bytes())
}

// sealedSource writes the sealed form of src.
type sealedSource struct {
	s        *Storage
	h        storage.Handle
	src      io.WriterTo
	size     int64
	want     []byte
	received time.Time
}

func (ss *sealedSource) WriteTo(w io.Writer) (int64, error) {
	stored := StoredSize(ss.size)
	var out func(p []byte, off int64) error
	var mem []byte
	if wa, ok := w.(io.WriterAt); ok {
		out = func(p []byte, off int64) error { _, err := wa.WriteAt(p, off); return err }
	} else {
		mem = make([]byte, stored)
		out = func(p []byte, off int64) error { copy(mem[off:], p); return nil }
	}
	hdr := &header{Size: ss.size, Received: ss.received}
	if _, err := rand.Read(hdr.Salt[:]); err != nil {
		return 0, fmt.Errorf("object salt: %w", err)
	}
	keys, err := deriveKeys(ss.s.key, hdr.Salt[:])
	if err != nil {
		return 0, err
	}
	sl := newSealer(keys, ss.s.identity(ss.h), ss.size, out)
	defer sl.free()
	if _, err := ss.src.WriteTo(sl); err != nil {
		return 0, err
	}
	if err := sl.finish(); err != nil {
		return 0, err
	}
	copy(hdr.ContentHash[:], sl.content.Sum(nil))
	if ss.want != nil && !hmac.Equal(ss.want, hdr.ContentHash[:]) {
		return 0, ErrDigestMismatch
	}
	hdr.TableHash = sha256.Sum256(sl.table)
	if err := out(append(hdr.encode(keys.macKey, sl.id), sl.table...), 0); err != nil {
		return 0, err
	}
	if mem != nil {
		n, err := w.Write(mem)
		return int64(n), err
	}
	return stored, nil
}

// sealer is the io.Writer the source writes its content into: it seals
// each segment once complete and hands it to out at its offset.
type sealer struct {
	keys     *objectKeys
	id       []byte
	size     int64
	nseg     int64
	out      func(p []byte, off int64) error
	plainBuf *[]byte
	sealBuf  *[]byte
	plain    []byte // the current segment's content so far
	i        int64  // index of the current segment
	got      int64  // content bytes written so far
	off      int64  // offset of the current segment's sealed bytes
	content  hash.Hash
	table    []byte
}

func newSealer(keys *objectKeys, id []byte, size int64, out func([]byte, int64) error) *sealer {
	nseg := numSegments(size)
	sl := &sealer{keys: keys, id: id, size: size, nseg: nseg, out: out,
		plainBuf: getBuf(size), sealBuf: getBuf(size), content: sha256.New(),
		table: make([]byte, 0, nseg*hashSize), off: HeaderSize + nseg*hashSize}
	sl.plain = (*sl.plainBuf)[:0]
	return sl
}

func (sl *sealer) free() {
	putBuf(sl.plainBuf)
	putBuf(sl.sealBuf)
	sl.plainBuf, sl.sealBuf = nil, nil
}

// segLen is the content length of segment i.
func (sl *sealer) segLen(i int64) int64 { return min(sl.size-i*segmentSize, segmentSize) }

func (sl *sealer) Write(p []byte) (int, error) {
	if int64(len(p)) > sl.size-sl.got {
		return 0, fmt.Errorf("more bytes than the %d declared", sl.size)
	}
	n := len(p)
	for len(p) > 0 {
		k := min(int64(len(p)), sl.segLen(sl.i)-int64(len(sl.plain)))
		sl.plain = append(sl.plain, p[:k]...)
		p = p[k:]
		sl.got += k
		if int64(len(sl.plain)) == sl.segLen(sl.i) {
			if err := sl.seal(); err != nil {
				return 0, err
			}
		}
	}
	return n, nil
}

// ReadFrom reads the content from r straight into the segment buffer (no
// intermediate copy) until r ends; more than the declared size is an error.
func (sl *sealer) ReadFrom(r io.Reader) (int64, error) {
	var total int64
	for {
		buf := sl.plain[len(sl.plain):cap(sl.plain)]
		if sl.got == sl.size {
			buf = buf[:1] // probe: anything more is too much
		} else {
			buf = buf[:sl.segLen(sl.i)-int64(len(sl.plain))]
		}
		n, err := r.Read(buf)
		if n > 0 && sl.got == sl.size {
			return total, fmt.Errorf("more bytes than the %d declared", sl.size)
		}
		sl.plain = sl.plain[:len(sl.plain)+n]
		sl.got += int64(n)
		total += int64(n)
		if n > 0 && int64(len(sl.plain)) == sl.segLen(sl.i) {
			if serr := sl.seal(); serr != nil {
				return total, serr
			}
		}
		if errors.Is(err, io.EOF) {
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
}

func (sl *sealer) seal() error {
	final := sl.i == sl.nseg-1
	sl.content.Write(sl.plain)
	sealed := sl.keys.aead.Seal((*sl.sealBuf)[:0], segmentNonce(sl.i), sl.plain, segmentAAD(sl.id, sl.size, sl.i, final))
	sum := sha256.Sum256(sealed)
	sl.table = append(sl.table, sum[:]...)
	if err := sl.out(sealed, sl.off); err != nil {
		return err
	}
	sl.off += int64(len(sealed))
	sl.i++
	sl.plain = sl.plain[:0]
	return nil
}

// finish seals the last segment of an empty object and checks that the
// declared size was written.
func (sl *sealer) finish() error {
	if sl.got != sl.size {
		return fmt.Errorf("source wrote %d of %d bytes: %w", sl.got, sl.size, io.ErrUnexpectedEOF)
	}
	if sl.i < sl.nseg { // only an empty object gets here
		return sl.seal()
	}
	return nil
}

// Load implements storage.Storage: it reads and authenticates only the
// segments the range touches.
func (s *Storage) Load(ctx context.Context, h storage.Handle, offset, length int64) ([]byte, error) {
	o, err := s.Open(ctx, h)
	if err != nil {
		return nil, fmt.Errorf("load: %w", err)
	}
	if offset < 0 || offset > o.Size() {
		return nil, fmt.Errorf("load %s: offset %d of %d bytes: %w", h, offset, o.Size(), storage.ErrRange)
	}
	if length < 0 {
		length = o.Size() - offset
	}
	if length > o.Size()-offset {
		return nil, fmt.Errorf("load %s: %d bytes at %d of %d: %w", h, length, offset, o.Size(), storage.ErrRange)
	}
	buf := bytes.NewBuffer(make([]byte, 0, length))
	if err := o.WriteRange(ctx, buf, offset, length); err != nil {
		return nil, fmt.Errorf("load %s: %w", h, err)
	}
	return buf.Bytes(), nil
}

// Stat implements storage.Storage; it authenticates the object's header.
func (s *Storage) Stat(ctx context.Context, h storage.Handle) (storage.FileInfo, error) {
	o, err := s.Open(ctx, h)
	if err != nil {
		return storage.FileInfo{}, fmt.Errorf("stat: %w", err)
	}
	return storage.FileInfo{Name: h.Name, Size: o.Size()}, nil
}

// List implements storage.Storage with content sizes. Stored objects whose
// size no sealed object has are not listed (Verify reports them).
func (s *Storage) List(ctx context.Context, kind storage.Kind, fn func(storage.FileInfo) error) error {
	return s.base.List(ctx, kind, func(fi storage.FileInfo) error {
		size, ok := ContentSize(fi.Size)
		if !ok {
			return nil
		}
		return fn(storage.FileInfo{Name: fi.Name, Size: size})
	})
}

// Remove implements storage.Storage.
func (s *Storage) Remove(ctx context.Context, h storage.Handle) error {
	return s.base.Remove(ctx, h)
}

// Verify reads back the whole object and checks everything: the header
// MAC, the segment table, each segment and the content hash. It returns
// the content size.
func (s *Storage) Verify(ctx context.Context, h storage.Handle) (int64, error) {
	o, err := s.Open(ctx, h)
	if err != nil {
		return 0, err
	}
	if err := o.copyRange(ctx, io.Discard, 0, o.Size(), true); err != nil {
		return 0, err
	}
	return o.Size(), nil
}

// Base returns the storage the sealed objects are kept in.
func (s *Storage) Base() storage.Storage { return s.base }
