package repository

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coffer-backup/coffer/internal/keyring"
	"github.com/coffer-backup/coffer/internal/storage"
	"github.com/coffer-backup/coffer/internal/storage/local"
)

// hugeObject is the size of the sparse files a hostile storage plants.
const hugeObject = 10 << 30

// guardedLoads is the local backend with a tripwire: a read of more than
// 1 GiB fails the test instead of being attempted, so that code which would
// read a planted 10 GB object whole fails here without exhausting memory.
type guardedLoads struct {
	storage.Storage
	t *testing.T
}

func (g guardedLoads) Load(ctx context.Context, h storage.Handle, off, n int64) ([]byte, error) {
	if n < 0 {
		if fi, err := g.Storage.Stat(ctx, h); err == nil {
			n = fi.Size - off
		}
	}
	if n > 1<<30 {
		g.t.Errorf("read %d bytes of %s whole", n, h)
		return nil, errors.New("the test refused a huge read")
	}
	return g.Storage.Load(ctx, h, off, n)
}

// hugeRepo is a repository on local disk behind guardedLoads, with one
// snapshot, one blob in a pack, one lock, forget and condemned record.
func hugeRepo(t *testing.T) (*Repository, string) {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	l, err := local.Create(dir)
	if err != nil {
		t.Fatal(err)
	}
	st := guardedLoads{Storage: l, t: t}
	r, _, err := Init(ctx, st, InitOptions{Passphrase: []byte("pw"), KDF: keyring.KDFParams{Time: 1, MemoryKiB: 8 * 1024, Threads: 1}})
	if err != nil {
		t.Fatal(err)
	}
	r.StartWriting(ctx)
	if _, _, err := r.SaveBlob(ctx, DataBlob, []byte("some data")); err != nil {
		t.Fatal(err)
	}
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	s := &Snapshot{Time: time.Now(), Tree: NewRandomID(), Paths: []string{"/x"}, Hostname: "h"}
	if err := r.SaveSnapshot(ctx, s); err != nil {
		t.Fatal(err)
	}
	return r, dir
}

// plant makes a sparse file of hugeObject bytes at path (created or
// extended).
func plant(t *testing.T, path string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE, 0o600) // #nosec G304 -- test path
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(hugeObject); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestHugeObjectsRefusedUnread plants a 10 GB sparse file as each kind of
// object read whole (issue 10, item 3): every load fails at once with
// ErrTooLarge naming the object, and nothing reads it.
func TestHugeObjectsRefusedUnread(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	newName := func() string { return NewRandomID().String() }
	cases := []struct {
		name  string
		plant func(t *testing.T, r *Repository, dir string) string // returns the object's name
		load  func(r *Repository) error
	}{
		{"index", func(t *testing.T, _ *Repository, dir string) string {
			n := newName()
			plant(t, filepath.Join(dir, "index", n))
			return "index/" + n
		}, func(r *Repository) error {
			// LoadIndex reports it and goes on (issue 10, item 7); the
			// file itself is refused unread.
			ids, err := r.ListIDs(ctx, storage.KindIndex)
			for _, id := range ids {
				if _, err := r.LoadIndexFile(ctx, id); err != nil {
					return err
				}
			}
			return err
		}},
		{"snapshot", func(t *testing.T, _ *Repository, dir string) string {
			n := newName()
			plant(t, filepath.Join(dir, "snapshots", n))
			return "snapshots/" + n
		}, func(r *Repository) error {
			snaps, bad, err := r.LoadSnapshots(ctx)
			if err != nil {
				return err
			}
			if len(snaps) != 1 || len(bad) != 1 {
				return errors.New("the good snapshot is not listed beside the bad one")
			}
			return bad[0].Err
		}},
		{"lock", func(t *testing.T, _ *Repository, dir string) string {
			n := newName()
			plant(t, filepath.Join(dir, "locks", n))
			return "locks/" + n
		}, func(r *Repository) error {
			// An unreadable lock is reported, not fatal (issue 10, item 7).
			locks, err := r.LoadLocks(ctx)
			for _, l := range locks {
				if l.Unreadable != nil {
					return l.Unreadable
				}
			}
			return err
		}},
		{"forget", func(t *testing.T, _ *Repository, dir string) string {
			n := newName()
			plant(t, filepath.Join(dir, "forgets", n))
			return "forgets/" + n
		}, func(r *Repository) error { _, err := r.ForgottenSnapshots(ctx); return err }},
		{"replacements", func(t *testing.T, _ *Repository, dir string) string {
			n := newName()
			plant(t, filepath.Join(dir, "forgets", n))
			return "forgets/" + n
		}, func(r *Repository) error { _, err := r.SnapshotReplacements(ctx); return err }},
		{"condemned", func(t *testing.T, _ *Repository, dir string) string {
			n := newName()
			plant(t, filepath.Join(dir, "condemned", n))
			return "condemned/" + n
		}, func(r *Repository) error { _, err := r.LoadCondemned(ctx); return err }},
		{"config", func(t *testing.T, _ *Repository, dir string) string {
			plant(t, filepath.Join(dir, "config"))
			return "config"
		}, func(r *Repository) error { _, err := Open(ctx, r.st, []byte("pw")); return err }},
		{"keyring", func(t *testing.T, _ *Repository, dir string) string {
			plant(t, filepath.Join(dir, "keyring", "00000002"))
			return "keyring/00000002"
		}, func(r *Repository) error { _, err := Open(ctx, r.st, []byte("pw")); return err }},
		{"pack in the pack cache", func(t *testing.T, r *Repository, dir string) string {
			var pack ID
			for _, l := range r.Index().Lookup(BlobHandle{Type: DataBlob, ID: r.Hasher().Sum([]byte("some data"))}) {
				pack = l.Pack
			}
			n := pack.String()
			plant(t, filepath.Join(dir, "data", n[:2], n))
			return "data/" + n
		}, func(r *Repository) error {
			r.UsePackCache(2)
			_, err := r.LoadBlob(ctx, DataBlob, r.Hasher().Sum([]byte("some data")))
			return err
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			r, dir := hugeRepo(t)
			obj := c.plant(t, r, dir)
			start := time.Now()
			err := c.load(r)
			if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), obj) {
				t.Fatalf("planted 10 GB %s: %v", obj, err)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Fatalf("refusing took %v", d)
			}
		})
	}
}

// TestHugeKeySlotDoesNotHideOthers: a 10 GB key slot is reported, and the
// repository still opens with the genuine one.
func TestHugeKeySlotDoesNotHideOthers(t *testing.T) {
	t.Parallel()
	r, dir := hugeRepo(t)
	plant(t, filepath.Join(dir, "keys", strings.Repeat("0", 32)))
	slots, errs, err := LoadSlots(context.Background(), r.st)
	if err != nil || len(slots) != 1 || len(errs) != 1 || !errors.Is(errs[0], ErrTooLarge) {
		t.Fatalf("slots %d, problems %v, err %v", len(slots), errs, err)
	}
	if _, err := Open(context.Background(), r.st, []byte("pw")); err != nil {
		t.Fatal(err)
	}
}

// TestObjectLimitsHoldWhatWritersWrite: the limits are no smaller than
// what coffer's own writers produce at their extremes.
func TestObjectLimitsHoldWhatWritersWrite(t *testing.T) {
	t.Parallel()
	for _, ps := range []int{1 << 20, DefaultPackSize, 1 << 30} {
		// A pack closed just below ps whose last blob is as large as
		// a blob can be, the rest tiny blobs.
		n := MaxPackBlobs(ps)
		unpadded := int64(44) + int64(ps) + MaxBlobSize + 64 + n*packEntrySize
		if MaxPackSize(ps) < unpadded {
			t.Errorf("pack size %d: limit %d below %d", ps, MaxPackSize(ps), unpadded)
		}
		f := &IndexFile{Supersedes: make([]ID, 1000)}
		entries := make([]PackEntry, min(n, DefaultIndexFileBlobs))
		f.Packs = []IndexPack{{Blobs: entries}}
		if got := int64(len(f.Encode())) + sealedOverhead; got > MaxIndexObject(ps) {
			t.Errorf("pack size %d: index file of %d bytes above the limit %d", ps, got, MaxIndexObject(ps))
		}
	}
	if maxSnapshotObject < maxSnapshotSize {
		t.Error("snapshot limit below what DecodeSnapshot accepts")
	}
}
