package check

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strings"
	"testing"

	"github.com/coffer-backup/coffer/internal/maintenance/repotest"
	"github.com/coffer-backup/coffer/internal/repository"
	"github.com/coffer-backup/coffer/internal/storage"
)

// brokenShard is storage whose data/XY directory cannot be listed; with
// unreadable also set, nothing in it can be looked up or read either.
type brokenShard struct {
	storage.Storage
	shard      string
	unreadable bool
}

var errShard = fmt.Errorf("read shard: %w", fs.ErrPermission)

func (b *brokenShard) inShard(h storage.Handle) bool {
	return h.Kind == storage.KindData && strings.HasPrefix(h.Name, b.shard)
}

func (b *brokenShard) List(ctx context.Context, k storage.Kind, fn func(storage.FileInfo) error) error {
	if k != storage.KindData {
		return b.Storage.List(ctx, k, fn)
	}
	err := b.Storage.List(ctx, k, func(fi storage.FileInfo) error {
		if strings.HasPrefix(fi.Name, b.shard) {
			return nil
		}
		return fn(fi)
	})
	if err != nil {
		return err
	}
	return fmt.Errorf("list data: %w", errShard)
}

func (b *brokenShard) Stat(ctx context.Context, h storage.Handle) (storage.FileInfo, error) {
	if b.unreadable && b.inShard(h) {
		return storage.FileInfo{}, errShard
	}
	return b.Storage.Stat(ctx, h)
}

func (b *brokenShard) Load(ctx context.Context, h storage.Handle, off, n int64) ([]byte, error) {
	if b.unreadable && b.inShard(h) {
		return nil, errShard
	}
	return b.Storage.Load(ctx, h, off, n)
}

// TestUnreadableShardReportsExactlyItsPacks: a data/XY directory that cannot
// be read (issue 10, minor) neither stops check nor makes it report more
// than what is really lost: exactly the packs of that shard, their blobs
// and the files using them, as if those packs alone were gone. A shard
// that only cannot be listed loses nothing.
func TestUnreadableShardReportsExactlyItsPacks(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	r := repotest.Open(t, f.st)
	packs := r.Index().Packs()
	shard := packs[0].String()[:2]
	var victims []repository.ID
	for _, p := range packs {
		if strings.HasPrefix(p.String(), shard) {
			victims = append(victims, p)
		}
	}
	var want []AffectedFile
	for _, v := range victims {
		want = append(want, expectedAffected(t, f.st, f.snaps, v)...)
	}
	sortAffected(want)

	res := runCheck(t, &brokenShard{Storage: f.st, shard: shard, unreadable: true}, Options{})
	var missing []repository.ID
	var got []AffectedFile
	for _, p := range res.MissingPacks {
		missing = append(missing, p.Pack)
		got = append(got, p.Affected...)
		if !strings.Contains(p.Problem, "cannot be reached") {
			t.Errorf("pack %s: problem %q does not say it cannot be reached", p.Pack.Short(), p.Problem)
		}
	}
	sortAffected(got)
	if !slices.Equal(missing, victims) {
		t.Errorf("packs reported %v, want exactly those of data/%s: %v", missing, shard, victims)
	}
	if len(want) == 0 || !slices.Equal(got, want) {
		t.Errorf("affected = %v\nwant %v", got, want)
	}
	for _, b := range res.LostBlobs {
		locs := r.Index().Lookup(repository.BlobHandle{Type: b.Type, ID: b.ID})
		if len(locs) == 0 || !slices.Contains(victims, locs[0].Pack) {
			t.Errorf("blob %s reported lost but not stored in data/%s", b.ID.Short(), shard)
		}
	}
	if len(res.LostBlobs) == 0 || len(res.SizeMismatches)+len(res.DamagedPacks)+len(res.ObjectErrors) != 0 {
		t.Errorf("lost %d blobs; other problems %+v %+v %+v", len(res.LostBlobs), res.SizeMismatches, res.DamagedPacks, res.ObjectErrors)
	}
	if !errors.Is(res.Err(), ErrDamaged) {
		t.Error("no ErrDamaged")
	}

	// Only the listing fails: every pack is found by itself, nothing is lost.
	res = runCheck(t, &brokenShard{Storage: f.st, shard: shard}, Options{ReadData: true})
	if res.Damaged() {
		t.Errorf("a shard that cannot be listed but read reported damage: %v", res.Err())
	}
	if len(res.Warnings) == 0 || !strings.Contains(strings.Join(res.Warnings, "\n"), "pack listing failed") {
		t.Errorf("warnings %q do not mention the failed listing", res.Warnings)
	}
}

func sortAffected(a []AffectedFile) {
	slices.SortFunc(a, func(x, y AffectedFile) int {
		return strings.Compare(x.Snapshot.String()+x.Path, y.Snapshot.String()+y.Path)
	})
}
