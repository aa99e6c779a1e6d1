package server

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/coffer-backup/coffer/internal/atrest"
	"github.com/coffer-backup/coffer/internal/server/alerting"
	"github.com/coffer-backup/coffer/internal/server/objstore"
	"github.com/coffer-backup/coffer/internal/server/replicate"
	"github.com/coffer-backup/coffer/internal/serverdb"
	"github.com/coffer-backup/coffer/internal/storage"
)

// TestReplicationLags: the watch gets each target's lag and its own
// --alert-lag threshold (0 for a target without one: the default).
func TestReplicationLags(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	db := openStateDB(t, dir)
	var key atrest.Key
	if err := os.Mkdir(filepath.Join(dir, objstore.ObjectsDir), 0o700); err != nil {
		t.Fatal(err)
	}
	store, err := objstore.OpenDir(dir, &key)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	src := replicate.Source{Store: store}
	if err := store.Create(ctx, "web1", "home"); err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(ctx, "web1", "home")
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Save(ctx, storage.Handle{Kind: storage.KindConfig, Name: "config"}, []byte("c")); err != nil {
		t.Fatal(err)
	}
	_ = st.Close()
	written := time.Now().Add(-3 * time.Hour)
	if err := os.Chtimes(filepath.Join(dir, objstore.ObjectsDir, "web1", "home", "config"), written, written); err != nil {
		t.Fatal(err)
	}
	for _, tgt := range []serverdb.ReplicaTarget{
		{Name: "fast", Location: "s3:http://127.0.0.1:1/b", AlertLag: 5 * time.Minute, Created: time.Now()},
		{Name: "slow", Location: "s3:http://127.0.0.1:1/c", Created: time.Now()},
	} {
		if err := db.AddReplicaTarget(ctx, tgt); err != nil {
			t.Fatal(err)
		}
	}
	now := time.Now()
	lags, err := replicationLags(src, db)(ctx, now)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]alerting.Lag{"fast": {Lag: now.Sub(written), Threshold: 5 * time.Minute}, "slow": {Lag: now.Sub(written)}}
	for name, w := range want {
		got := lags[name]
		if got.Threshold != w.Threshold || got.Lag < w.Lag-time.Second || got.Lag > w.Lag+time.Second {
			t.Errorf("%s: %+v, want %+v", name, got, w)
		}
	}
}
