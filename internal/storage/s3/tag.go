package s3

import (
	"context"
	"crypto/md5" // #nosec G501 -- S3's ETag is an MD5; it checks a transfer, it protects nothing
	"encoding/hex"
	"fmt"
	"hash"
	"strconv"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/coffer-backup/coffer/internal/storage"
)

// Tag is what the store reports of one object: its size and its ETag
// (without quotes), which S3 computes from the bytes it received; and,
// from StatTag, until when an object lock retains it (zero: no lock).
type Tag struct {
	Name        string
	Size        int64
	ETag        string
	RetainUntil time.Time
}

// StatTag returns the size and ETag of h; a missing object fails with
// storage.ErrNotFound.
func (s *S3) StatTag(ctx context.Context, h storage.Handle) (Tag, error) {
	if err := s.check(ctx, "stat", h); err != nil {
		return Tag{}, err
	}
	info, err := s.client.StatObject(ctx, s.loc.Bucket, s.key(h), minio.StatObjectOptions{})
	if err != nil {
		return Tag{}, fmt.Errorf("stat %s: %w", h, s.callError(ctx, err))
	}
	return Tag{Name: h.Name, Size: info.Size, ETag: strings.Trim(info.ETag, `"`), RetainUntil: retainedUntil(info.Headers)}, nil
}

// ETagHash computes, from an object's content written into it, the ETag
// a store gives the object when this backend saves it: the MD5 of the
// content for a single PUT, and for a multipart upload the MD5 of the
// parts' MD5s followed by "-" and the number of parts (the scheme of AWS
// and the stores that follow it).
type ETagHash struct {
	size, partSize int64
	parts          int
	whole          hash.Hash
	part           hash.Hash
	inPart         int64
	sums           []byte
}

// NewETagHash returns the ETagHash of an object of size bytes that s
// saves.
func (s *S3) NewETagHash(size int64) (*ETagHash, error) {
	e := &ETagHash{size: size, whole: md5.New(), part: md5.New()} // #nosec G401 -- see the import
	if size > int64(s.partSize) {                                 // #nosec G115 -- the part size is at most 5 GiB
		n, partSize, _, err := minio.OptimalPartInfo(size, s.partSize)
		if err != nil {
			return nil, err
		}
		e.parts, e.partSize = n, partSize
	}
	return e, nil
}

// Write implements io.Writer.
func (e *ETagHash) Write(p []byte) (int, error) {
	n := len(p)
	e.whole.Write(p)
	for e.parts > 0 && len(p) > 0 {
		k := min(int64(len(p)), e.partSize-e.inPart)
		e.part.Write(p[:k])
		e.inPart += k
		p = p[k:]
		if e.inPart == e.partSize {
			e.endPart()
		}
	}
	return n, nil
}

func (e *ETagHash) endPart() {
	e.sums = e.part.Sum(e.sums)
	e.part.Reset()
	e.inPart = 0
}

// Sum returns the expected ETag.
func (e *ETagHash) Sum() string {
	if e.parts == 0 {
		return hex.EncodeToString(e.whole.Sum(nil))
	}
	if e.inPart > 0 {
		e.endPart()
	}
	sum := md5.Sum(e.sums) // #nosec G401 -- see the import
	return hex.EncodeToString(sum[:]) + "-" + strconv.Itoa(e.parts)
}
