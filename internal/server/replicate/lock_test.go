package replicate

import (
	"bytes"
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/coffer-backup/coffer/internal/serverdb"
	"github.com/coffer-backup/coffer/internal/storage"
	"github.com/coffer-backup/coffer/internal/storage/s3"
	"github.com/coffer-backup/coffer/internal/storage/s3/s3test"
)

// TestLockRefusesABucketWithoutLock: --lock-days on a bucket made without
// object lock is refused at add, naming the bucket and what to do, and
// nothing is kept of the target.
func TestLockRefusesABucketWithoutLock(t *testing.T) {
	t.Parallel()
	srv := s3test.Start(t)
	p := newPrimary(t)
	bucket := srv.NewBucket(t)
	err := p.addS3(t, srv, bucket, Settings{Name: "off", LockDays: 7})
	if !errors.Is(err, s3.ErrNoObjectLock) || !strings.Contains(err.Error(), bucket) || !strings.Contains(err.Error(), "--lock-days") {
		t.Fatalf("add --lock-days on a bucket without object lock: %v", err)
	}
	if _, err := p.db.ReplicaTarget(context.Background(), "off"); !errors.Is(err, serverdb.ErrNotFound) {
		t.Fatalf("the refused target was recorded: %v", err)
	}
	if _, err := os.Stat(TargetDir(p.dir, "off")); !os.IsNotExist(err) {
		t.Fatalf("the refused target's directory (credentials) is left: %v", err)
	}
	// A coffer:// target has no object lock.
	s := Settings{Name: "c", Location: "coffer://127.0.0.1:1", LockDays: 7}
	if err := s.Check(); err == nil || !strings.Contains(err.Error(), "--lock-days") {
		t.Fatalf("--lock-days on a coffer:// target: %v", err)
	}
}

// TestLockedReplication: copies are locked in compliance mode until
// now+lock (they can be neither deleted nor overwritten through the S3
// API), an extension pass moves the date of what the primary still has,
// and a copy the primary deleted waits for its lock to end, without
// failing a pass, and is deleted after.
func TestLockedReplication(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv := s3test.Start(t)
	p := newPrimary(t)
	if err := p.addS3(t, srv, "locked", Settings{Name: "off", LockDays: 1, KeepDeleted: 0, Parallel: 4}); err != nil {
		t.Fatalf("add to a missing bucket (made with object lock): %v", err)
	}
	k := RepoKey{"web1", "home"}
	packs := p.fill(t, k, 5, 64<<10)
	big := p.fill(t, RepoKey{"web1", "big"}, 1, 9<<20) // a multipart upload

	// The pass's clock runs a day minus a few seconds behind: its copies
	// are locked until a few seconds from now, by the target's clock.
	const margin = 20 * time.Second
	off := -24*time.Hour + margin
	clock := func() time.Time { return time.Now().Add(off) }
	start := time.Now()
	rep, err := p.run(t, "off", clock, 0)
	if err != nil || rep.Sent != 12 || len(rep.Failed) != 0 {
		t.Fatalf("first pass: %+v, %v", rep, err)
	}
	recs, err := p.db.ReplicaObjects(ctx, "off", "", "")
	if err != nil {
		t.Fatal(err)
	}
	var pack0Until time.Time
	for _, r := range recs {
		if r.Repo == k.Repo && r.Name == packs[0].Name {
			pack0Until = r.RetainUntil
		}
		if r.RetainUntil.Before(start.Add(margin).Truncate(time.Second)) || r.RetainUntil.After(time.Now().Add(margin+2*time.Second)) {
			t.Fatalf("%s/%s recorded retention %v, want about %v", r.Kind, r.Name, r.RetainUntil, start.Add(margin))
		}
	}
	cfg := srv.Config("locked", "offsite/web1/home")
	st, err := s3.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	c, err := minio.New(srv.Endpoint, &minio.Options{Creds: srv.Creds(), Region: "us-east-1"})
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"offsite/web1/home/data/00/" + packs[0].Name, "offsite/web1/big/data/00/" + big[0].Name} {
		if err := c.RemoveObject(ctx, "locked", key, minio.RemoveObjectOptions{}); err == nil {
			t.Fatalf("deleted locked %s through the S3 API", key)
		}
		if _, err := c.PutObject(ctx, "locked", key, bytes.NewReader([]byte("x")), 1, minio.PutObjectOptions{}); err == nil {
			t.Fatalf("overwrote locked %s through the S3 API", key)
		}
	}

	// The primary deletes a pack; then a pass six hours before the lock's
	// end (by its clock) extends what the primary still has to a day from
	// its now, and holds the deleted pack for its lock.
	p.remove(t, k, packs[0])
	off = -6 * time.Hour
	rep, err = p.run(t, "off", clock, 0)
	if err != nil || rep.Extended != 11 || rep.Locked != 1 || rep.Deleted != 0 || len(rep.Failed) != 0 {
		t.Fatalf("extension pass: %+v, %v", rep, err)
	}
	until, err := st.Retention(ctx, packs[1])
	if want := time.Now().Add(18 * time.Hour); err != nil || until.Before(want.Add(-time.Minute)) || until.After(want.Add(time.Minute)) {
		t.Fatalf("retention after the extension: %v, %v; want about %v", until, err, want)
	}
	if until, err := st.Retention(ctx, packs[0]); err != nil || !until.Equal(pack0Until) {
		t.Fatalf("the deleted pack's retention was extended: %v, %v", until, err)
	}
	if rep, err := p.run(t, "off", clock, 0); err != nil || rep.Extended != 0 {
		t.Fatalf("a pass right after extends again: %+v, %v", rep, err)
	}

	// A pass whose clock says the lock has ended, while the target's says
	// it has not: the refused deletion is reported as locked, not failed.
	off = time.Hour
	rep, err = p.run(t, "off", clock, 0)
	if err != nil || len(rep.Failed) != 0 || rep.Locked+rep.Deleted != 1 {
		t.Fatalf("deletion when the pass's clock says the lock has ended: %+v, %v", rep, err)
	}
	if time.Now().Before(pack0Until) && rep.Locked != 1 {
		t.Fatalf("deletion refused by the lock: %+v, %v", rep, err)
	}
	deleted := rep.Deleted // a loaded machine may have got past the lock already

	// Once the lock has ended, the next pass deletes the copy.
	time.Sleep(time.Until(pack0Until.Add(time.Second)))
	off = 0
	rep, err = p.run(t, "off", clock, 0)
	if err != nil || deleted+rep.Deleted != 1 || rep.Locked != 0 || len(rep.Failed) != 0 {
		t.Fatalf("after the lock ended: %+v, %v", rep, err)
	}
	if _, err := st.Stat(ctx, packs[0]); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("the deleted pack after its lock: %v", err)
	}
}
