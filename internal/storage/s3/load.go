package s3

import (
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"

	"github.com/minio/minio-go/v7"

	"github.com/coffer-backup/coffer/internal/storage"
)

// Load implements storage.Storage. A ranged GET returns what S3 has of
// the range; the object's size from Content-Range then tells a range that
// runs past the end (storage.ErrRange), which S3 would silently shorten.
func (s *S3) Load(ctx context.Context, h storage.Handle, offset, length int64) ([]byte, error) {
	if err := s.check(ctx, "load", h); err != nil {
		return nil, err
	}
	b, err := s.load(ctx, h, offset, length)
	if err != nil {
		return nil, fmt.Errorf("load %s [%d,%d]: %w", h, offset, length, err)
	}
	return b, nil
}

func (s *S3) load(ctx context.Context, h storage.Handle, offset, length int64) ([]byte, error) {
	if offset < 0 || length >= 0 && length > math.MaxInt64-offset {
		return nil, storage.ErrRange
	}
	if length == 0 || length < 0 && offset > 0 {
		// An empty range, or "from offset to the end" where S3 would answer
		// 416 for offset == size: the size decides.
		size, err := s.stat(ctx, h)
		switch {
		case err != nil:
			return nil, err
		case offset > size:
			return nil, storage.ErrRange
		case length == 0 || offset == size:
			return []byte{}, nil
		}
	}
	body, want, err := s.get(ctx, h, offset, length)
	if err != nil {
		return nil, err
	}
	defer func() { _ = body.Close() }()
	if want < 0 || want > math.MaxInt32 {
		return nil, fmt.Errorf("server announced %d bytes", want)
	}
	buf := make([]byte, want)
	if _, err := io.ReadFull(body, buf); err != nil {
		return nil, s.callError(ctx, fmt.Errorf("read body: %w", err))
	}
	return buf, nil
}

// get starts a GET of h from offset, of length bytes (to the end when
// negative), and returns the body and how many bytes of it to read. The
// caller closes the body.
func (s *S3) get(ctx context.Context, h storage.Handle, offset, length int64) (io.ReadCloser, int64, error) {
	opts := minio.GetObjectOptions{}
	switch {
	case length > 0:
		opts.Set("Range", fmt.Sprintf("bytes=%d-%d", offset, offset+length-1))
	case offset > 0:
		opts.Set("Range", fmt.Sprintf("bytes=%d-", offset))
	}
	body, info, hdr, err := s.core.GetObject(ctx, s.loc.Bucket, s.key(h), opts)
	if err != nil {
		return nil, 0, s.callError(ctx, err)
	}
	if offset == 0 && length < 0 {
		return body, info.Size, nil
	}
	total, ok := rangeTotal(hdr)
	switch {
	case !ok:
		err = fmt.Errorf("the server answered a ranged GET without a readable Content-Range (%q)", hdr.Get("Content-Range"))
	case length > 0 && offset+length > total:
		err = storage.ErrRange
	case length > 0:
		return body, length, nil
	default:
		return body, info.Size, nil
	}
	_ = body.Close()
	return nil, 0, err
}

// rangeTotal returns the object size from "Content-Range: bytes a-b/SIZE".
func rangeTotal(hdr http.Header) (int64, bool) {
	cr := hdr.Get("Content-Range")
	_, total, ok := strings.Cut(cr, "/")
	if !ok || !strings.HasPrefix(cr, "bytes ") {
		return 0, false
	}
	n, err := strconv.ParseInt(total, 10, 64)
	return n, err == nil && n >= 0
}
