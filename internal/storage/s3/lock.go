package s3

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/coffer-backup/coffer/internal/storage"
)

// ErrNoObjectLock is returned by CheckObjectLock for a bucket that does
// not have object lock enabled (S3 enables it only when the bucket is
// created; it cannot be turned on later on every store).
var ErrNoObjectLock = errors.New("object lock is not enabled on the bucket (it must be created with object lock, e.g. aws s3api create-bucket --object-lock-enabled-for-bucket)")

// ErrNotLocked is wrapped by Retention's error for an object that has no
// retention date.
var ErrNotLocked = errors.New("the object has no retention")

// CheckObjectLock makes sure cfg's bucket has object lock enabled. A
// missing bucket is created with object lock when create is set, else it
// is an error wrapping storage.ErrNoRepository; a bucket without object
// lock is ErrNoObjectLock.
func CheckObjectLock(ctx context.Context, cfg Config, create bool) error {
	s, err := newS3(cfg)
	if err != nil {
		return err
	}
	defer func() { _ = s.Close() }()
	_, err = s.probeRetried(ctx)
	if errors.Is(err, errNoBucket) {
		if !create {
			return fmt.Errorf("bucket %s does not exist at %s: %w", s.loc.Bucket, s.loc.Endpoint, storage.ErrNoRepository)
		}
		err = s.client.MakeBucket(ctx, s.loc.Bucket, minio.MakeBucketOptions{Region: cfg.Region, ObjectLocking: true})
		if err != nil {
			return fmt.Errorf("make bucket %s with object lock: %w", s.loc.Bucket, mapError(err))
		}
	} else if err != nil {
		return fmt.Errorf("bucket %s: %w", s.loc.Bucket, err)
	}
	enabled, _, _, _, err := s.client.GetObjectLockConfig(ctx, s.loc.Bucket)
	if err != nil && minio.ToErrorResponse(err).Code != "ObjectLockConfigurationNotFoundError" {
		return fmt.Errorf("object lock configuration of bucket %s: %w", s.loc.Bucket, mapError(err))
	}
	if enabled != "Enabled" {
		return fmt.Errorf("bucket %s at %s: %w", s.loc.Bucket, s.loc.Endpoint, ErrNoObjectLock)
	}
	return nil
}

// putRetention adds cfg.RetainUntil's retention to opts.
func (s *S3) putRetention(opts *minio.PutObjectOptions) {
	if s.retainUntil == nil {
		return
	}
	opts.Mode = minio.Compliance
	opts.RetainUntilDate = s.retainUntil().UTC().Truncate(time.Second).Add(time.Second)
}

// Retention returns until when h is retained (its lock's mode is not
// looked at), as a HEAD reports it; an object without retention is
// ErrNotLocked.
func (s *S3) Retention(ctx context.Context, h storage.Handle) (time.Time, error) {
	t, err := s.StatTag(ctx, h)
	if err != nil {
		return time.Time{}, err
	}
	if t.RetainUntil.IsZero() {
		return time.Time{}, fmt.Errorf("retention of %s: %w", h, ErrNotLocked)
	}
	return t.RetainUntil, nil
}

// retainUntilHeader is where a HEAD reports an object's retention.
const retainUntilHeader = "X-Amz-Object-Lock-Retain-Until-Date"

// retainedUntil reads the retention date of a HEAD's headers (zero: none
// or unreadable).
func retainedUntil(h http.Header) time.Time {
	v := h.Get(retainUntilHeader)
	if v == "" {
		return time.Time{}
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return time.Time{}
	}
	return t.UTC()
}

// Retain sets h's retention to until in compliance mode. Stores refuse
// to shorten a compliance retention (storage.ErrForbidden).
func (s *S3) Retain(ctx context.Context, h storage.Handle, until time.Time) error {
	if err := s.check(ctx, "retain", h); err != nil {
		return err
	}
	mode := minio.Compliance
	until = until.UTC().Truncate(time.Second)
	err := s.client.PutObjectRetention(ctx, s.loc.Bucket, s.key(h), minio.PutObjectRetentionOptions{Mode: &mode, RetainUntilDate: &until})
	if err != nil {
		return fmt.Errorf("retain %s until %s: %w", h, until.Format(time.RFC3339), s.callError(ctx, err))
	}
	return nil
}
