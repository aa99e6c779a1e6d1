package s3_test

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/coffer-backup/coffer/internal/storage"
	"github.com/coffer-backup/coffer/internal/storage/s3"
	"github.com/coffer-backup/coffer/internal/storage/s3/s3test"
)

// TestObjectLock: a bucket without object lock is refused; one made by
// CheckObjectLock has it; objects saved with RetainUntil can be neither
// deleted nor overwritten through the S3 API before their date, which
// Retain moves later but not earlier.
func TestObjectLock(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv := s3test.Start(t)

	plain := srv.NewBucket(t)
	if err := s3.CheckObjectLock(ctx, srv.Config(plain, "p"), true); !errors.Is(err, s3.ErrNoObjectLock) || !bytes.Contains([]byte(err.Error()), []byte(plain)) {
		t.Fatalf("a bucket without object lock: %v", err)
	}
	if err := s3.CheckObjectLock(ctx, srv.Config("locked", "p"), false); !errors.Is(err, storage.ErrNoRepository) {
		t.Fatalf("a missing bucket without create: %v", err)
	}
	if err := s3.CheckObjectLock(ctx, srv.Config("locked", "p"), true); err != nil {
		t.Fatalf("making a bucket with object lock: %v", err)
	}
	if err := s3.CheckObjectLock(ctx, srv.Config("locked", "other"), false); err != nil {
		t.Fatalf("the bucket made with object lock: %v", err)
	}

	cfg := srv.Config("locked", "repo")
	until := time.Now().Add(24 * time.Hour)
	cfg.RetainUntil = func() time.Time { return until }
	st, err := s3.Create(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	h := storage.Handle{Kind: storage.KindData, Name: "aa11"}
	if err := st.Save(ctx, h, []byte("locked content")); err != nil {
		t.Fatal(err)
	}
	got, err := st.Retention(ctx, h)
	if err != nil || got.Before(until) || got.After(until.Add(2*time.Second)) {
		t.Fatalf("retention %v, %v; want %v", got, err, until)
	}
	if err := st.Remove(ctx, h); !errors.Is(err, storage.ErrForbidden) {
		t.Fatalf("deleting a locked object: %v", err)
	}
	c, err := minio.New(srv.Endpoint, &minio.Options{Creds: srv.Creds(), Region: "us-east-1"})
	if err != nil {
		t.Fatal(err)
	}
	key := "repo/data/aa/aa11"
	if err := c.RemoveObject(ctx, "locked", key, minio.RemoveObjectOptions{}); err == nil {
		t.Fatal("a plain S3 DELETE removed a locked object")
	}
	if err := c.RemoveObject(ctx, "locked", key, minio.RemoveObjectOptions{GovernanceBypass: true}); err == nil {
		t.Fatal("a DELETE bypassing governance removed an object in compliance mode")
	}
	if _, err := c.PutObject(ctx, "locked", key, bytes.NewReader([]byte("other")), 5, minio.PutObjectOptions{}); err == nil {
		t.Fatal("a plain S3 PUT overwrote a locked object")
	}
	if b, err := st.Load(ctx, h, 0, -1); err != nil || string(b) != "locked content" {
		t.Fatalf("after the refused writes: %q, %v", b, err)
	}

	later := until.Add(48 * time.Hour)
	if err := st.Retain(ctx, h, later); err != nil {
		t.Fatalf("extending: %v", err)
	}
	if got, err := st.Retention(ctx, h); err != nil || !got.Equal(later.UTC().Truncate(time.Second)) {
		t.Fatalf("after extending: %v, %v; want %v", got, err, later)
	}
	if err := st.Retain(ctx, h, until); !errors.Is(err, storage.ErrForbidden) {
		t.Fatalf("shortening a compliance retention: %v", err)
	}

	free := storage.Handle{Kind: storage.KindData, Name: "bb22"}
	plainSt, err := s3.Create(ctx, srv.Config("locked", "plain"))
	if err != nil {
		t.Fatal(err)
	}
	defer plainSt.Close()
	if err := plainSt.Save(ctx, free, []byte("x")); err != nil {
		t.Fatal(err)
	}
	if _, err := plainSt.Retention(ctx, free); !errors.Is(err, s3.ErrNotLocked) {
		t.Fatalf("retention of an object saved without: %v", err)
	}
}
