package s3

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/coffer-backup/coffer/internal/storage"
)

// Bucket is the keys below a prefix of a bucket, for a caller that keeps
// many repositories in one bucket (the storage server: one repository per
// client and name). Repository returns the storage of one of them; the
// other methods work on keys relative to the prefix. It is safe for
// concurrent use.
type Bucket struct {
	s *S3
}

// Key is one object of a Bucket listing, or (Dir) a common prefix ending
// in '/' of a listing that does not recurse.
type Key struct {
	Name    string // relative to the bucket's prefix
	Size    int64
	ModTime time.Time
	Dir     bool
}

// OpenBucket opens the bucket of cfg.Location, making it when create is
// true and it is missing. A missing bucket otherwise fails with an error
// wrapping storage.ErrNoRepository; refused credentials with
// ErrCredentials, as Open.
func OpenBucket(ctx context.Context, cfg Config, create bool) (*Bucket, error) {
	s, err := newS3(cfg)
	if err != nil {
		return nil, err
	}
	_, err = s.probeRetried(ctx)
	if errors.Is(err, errNoBucket) && create {
		err = s.client.MakeBucket(ctx, s.loc.Bucket, minio.MakeBucketOptions{Region: cfg.Region})
		if err != nil {
			err = fmt.Errorf("make bucket %s: %w", s.loc.Bucket, mapError(err))
		}
	} else if errors.Is(err, errNoBucket) {
		err = fmt.Errorf("bucket %s does not exist at %s: %w", s.loc.Bucket, s.loc.Endpoint, storage.ErrNoRepository)
	}
	if err != nil {
		_ = s.Close()
		return nil, fmt.Errorf("open %s: %w", s.Location(), err)
	}
	return &Bucket{s: s}, nil
}

// Location is the bucket's location with its prefix.
func (b *Bucket) Location() string { return b.s.Location() }

// Close closes the bucket's connections; the repositories it returned
// fail from then on, as after their own Close.
func (b *Bucket) Close() error { return b.s.Close() }

// Repository returns the storage of the repository below rel (a
// '/'-separated path under the bucket's prefix, already validated by the
// caller), without looking for its config object. Its Close does not
// close the bucket's connections, which it shares.
func (b *Bucket) Repository(rel string) *S3 {
	loc := b.s.loc
	loc.Prefix = strings.TrimPrefix(b.s.keyPrefix()+rel, "/")
	return &S3{client: b.s.client, core: b.s.core, loc: loc, partSize: b.s.partSize, pageSize: b.s.pageSize, parent: b.s}
}

func (b *Bucket) key(rel string) string { return b.s.keyPrefix() + rel }

// List calls fn for the keys below dir (relative to the prefix, "" or
// ending in '/'): every key below it when recursive, else the keys
// directly in it and its common prefixes (Dir). A listing error is
// returned, never taken for the end of the listing.
func (b *Bucket) List(ctx context.Context, dir string, recursive bool, fn func(Key) error) error {
	if err := b.s.usable(ctx); err != nil {
		return fmt.Errorf("list %s: %w", dir, err)
	}
	opts := minio.ListObjectsOptions{Prefix: b.key(dir), Recursive: recursive, MaxKeys: b.s.pageSize}
	n := len(b.s.keyPrefix())
	for obj := range b.s.client.ListObjectsIter(ctx, b.s.loc.Bucket, opts) {
		if obj.Err != nil {
			return fmt.Errorf("list %s: %w", dir, b.s.callError(ctx, obj.Err))
		}
		if len(obj.Key) < n {
			continue
		}
		k := Key{Name: obj.Key[n:], Size: obj.Size, ModTime: obj.LastModified}
		if strings.HasSuffix(obj.Key, "/") {
			if recursive || obj.Size > 0 {
				continue // a directory marker some tools write: no object
			}
			k.Dir = true
		}
		if err := fn(k); err != nil {
			return err
		}
	}
	if err := b.s.usable(ctx); err != nil {
		return fmt.Errorf("list %s: %w", dir, err)
	}
	return nil
}

// Stat returns the key rel; a missing one fails with storage.ErrNotFound.
func (b *Bucket) Stat(ctx context.Context, rel string) (Key, error) {
	if err := b.s.usable(ctx); err != nil {
		return Key{}, err
	}
	info, err := b.s.client.StatObject(ctx, b.s.loc.Bucket, b.key(rel), minio.StatObjectOptions{})
	if err != nil {
		return Key{}, fmt.Errorf("stat %s: %w", rel, b.s.callError(ctx, err))
	}
	return Key{Name: rel, Size: info.Size, ModTime: info.LastModified}, nil
}

// PutNew writes data under rel if nothing is there: a HEAD first, then a
// conditional PUT (If-None-Match: *) where the server supports it, so of
// two racing writers one fails with storage.ErrExists.
func (b *Bucket) PutNew(ctx context.Context, rel string, data []byte) error {
	if err := b.s.usable(ctx); err != nil {
		return err
	}
	if _, err := b.Stat(ctx, rel); err == nil {
		return fmt.Errorf("put %s: %w", rel, storage.ErrExists)
	} else if !errors.Is(err, storage.ErrNotFound) {
		return fmt.Errorf("put %s: %w", rel, err)
	}
	opts := minio.PutObjectOptions{ContentType: "application/octet-stream"}
	opts.SetMatchETagExcept("*")
	if _, err := b.s.client.PutObject(ctx, b.s.loc.Bucket, b.key(rel), bytes.NewReader(data), int64(len(data)), opts); err != nil {
		return fmt.Errorf("put %s: %w", rel, b.s.callError(ctx, err))
	}
	return nil
}

// Copy copies the object src to dst within the bucket, on the server.
// A missing src fails with storage.ErrNotFound.
func (b *Bucket) Copy(ctx context.Context, src, dst string) error {
	if err := b.s.usable(ctx); err != nil {
		return err
	}
	_, err := b.s.client.CopyObject(ctx,
		minio.CopyDestOptions{Bucket: b.s.loc.Bucket, Object: b.key(dst)},
		minio.CopySrcOptions{Bucket: b.s.loc.Bucket, Object: b.key(src)})
	if err != nil {
		return fmt.Errorf("copy %s to %s: %w", src, dst, b.s.callError(ctx, err))
	}
	return nil
}

// Remove deletes the key rel; deleting a missing key is no error (S3's
// rule: callers that must tell stat first).
func (b *Bucket) Remove(ctx context.Context, rel string) error {
	if err := b.s.usable(ctx); err != nil {
		return err
	}
	if err := b.s.client.RemoveObject(ctx, b.s.loc.Bucket, b.key(rel), minio.RemoveObjectOptions{}); err != nil {
		return fmt.Errorf("remove %s: %w", rel, b.s.callError(ctx, err))
	}
	return nil
}
