package maintenance

import (
	"context"
	"math/rand/v2"
	"path/filepath"
	"sync"
	"testing"

	"github.com/coffer-backup/coffer/internal/maintenance/repotest"
	"github.com/coffer-backup/coffer/internal/storage"
)

// onFirstPack runs hook once, before the first pack prune stores (the
// first pack its repacking writes).
type onFirstPack struct {
	storage.Storage
	once sync.Once
	hook func()
}

func (o *onFirstPack) Save(ctx context.Context, h storage.Handle, data []byte) error {
	if h.Kind == storage.KindData {
		o.once.Do(o.hook)
	}
	return o.Storage.Save(ctx, h, data)
}

// TestPruneRacingBackup: a backup commits (pack, index, snapshot, unlock)
// while prune repacks. Prune's second phase then sees a snapshot whose
// trees are in an index file it has not read yet; it must read the index
// before walking them and finish, not call a healthy repository damaged
// (issue 10, item 17).
func TestPruneRacingBackup(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := setupTwo(t)
	forget(t, f.st, f.old)
	rng := rand.New(rand.NewPCG(51, 52))
	src := t.TempDir()
	repotest.RandomTree(t, filepath.Join(src, "racing"), 3, 200<<10, rng)
	want := repotest.Files(t, src)
	fired := false
	wrapped := &onFirstPack{Storage: f.st, hook: func() {
		fired = true
		b := openRepo(t, f.st)
		l, err := b.Lock(ctx, "backup", false)
		if err != nil {
			t.Error(err)
			return
		}
		defer func() { _ = l.Unlock(ctx) }()
		repotest.Backup(t, f.st, []string{src})
	}}
	rep, err := Prune(ctx, openRepo(t, wrapped), PruneOptions{MaxUnused: MaxUnused{Percent: 0}})
	if err != nil {
		t.Fatalf("prune racing a backup: %v", err)
	}
	if !fired || rep.RepackedPacks == 0 {
		t.Fatalf("the backup did not race the repacking: %+v", rep)
	}
	if rep.DeletedPacks == 0 {
		t.Fatalf("prune deferred although the backup had finished: %+v", rep)
	}
	mustCheck(t, f.st)
	repotest.AssertRestores(t, f.st, f.cur, f.wantCur)
	snaps, _, err := openRepo(t, f.st).LoadSnapshots(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range snaps {
		if s.Paths[0] == src {
			repotest.AssertRestores(t, f.st, s, want)
			return
		}
	}
	t.Fatal("the racing backup's snapshot is gone")
}
