package s3

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/minio/minio-go/v7"

	"github.com/coffer-backup/coffer/internal/storage"
)

// LoadPrefix returns the first n bytes of h (all of it when h is
// shorter) and h's size, in one request: a reader that needs an object's
// size and its first bytes (the at-rest layer: its header and segment
// table) saves a HEAD. A missing object fails with storage.ErrNotFound.
func (s *S3) LoadPrefix(ctx context.Context, h storage.Handle, n int64) ([]byte, int64, error) {
	if err := s.check(ctx, "load", h); err != nil {
		return nil, 0, err
	}
	if n <= 0 || n > 1<<20 {
		return nil, 0, fmt.Errorf("load %s: prefix of %d bytes: %w", h, n, storage.ErrRange)
	}
	b, size, err := s.loadPrefix(ctx, h, n)
	if errors.Is(err, storage.ErrRange) {
		// An empty object has no byte 0 to start a range at.
		size, err = s.stat(ctx, h)
		b = []byte{}
	}
	if err != nil {
		return nil, 0, fmt.Errorf("load %s: %w", h, err)
	}
	return b, size, nil
}

func (s *S3) loadPrefix(ctx context.Context, h storage.Handle, n int64) ([]byte, int64, error) {
	opts := minio.GetObjectOptions{}
	opts.Set("Range", fmt.Sprintf("bytes=0-%d", n-1))
	body, _, hdr, err := s.core.GetObject(ctx, s.loc.Bucket, s.key(h), opts)
	if err != nil {
		return nil, 0, s.callError(ctx, err)
	}
	defer func() { _ = body.Close() }()
	total, ok := rangeTotal(hdr)
	if !ok {
		return nil, 0, fmt.Errorf("the server answered a ranged GET without a readable Content-Range (%q)", hdr.Get("Content-Range"))
	}
	buf := make([]byte, min(n, total))
	if _, err := io.ReadFull(body, buf); err != nil {
		return nil, 0, s.callError(ctx, fmt.Errorf("read body: %w", err))
	}
	return buf, total, nil
}
