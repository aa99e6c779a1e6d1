package objstore

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/coffer-backup/coffer/internal/atrest"
	"github.com/coffer-backup/coffer/internal/storage"
	"github.com/coffer-backup/coffer/internal/storage/s3/s3test"
)

func testKey(t *testing.T) *atrest.Key {
	t.Helper()
	var k atrest.Key
	if _, err := rand.Read(k[:]); err != nil {
		t.Fatal(err)
	}
	return &k
}

// eachStore runs fn against a store in a state directory and one in a
// bucket of a real S3 server (versitygw; skipped without it unless
// COFFER_REQUIRE_S3=1): the object store's contract is the same.
func eachStore(t *testing.T, fn func(t *testing.T, st *Store)) {
	t.Run("local", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		if err := os.Mkdir(filepath.Join(dir, ObjectsDir), 0o700); err != nil {
			t.Fatal(err)
		}
		st, err := OpenDir(dir, testKey(t))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = st.Close() })
		fn(t, st)
	})
	t.Run("s3", func(t *testing.T) {
		t.Parallel()
		srv := s3test.Start(t)
		st, err := OpenBucket(context.Background(), srv.Config("objects", "srv/one"), testKey(t), true)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = st.Close() })
		fn(t, st)
	})
}

var (
	pack = storage.Handle{Kind: storage.KindData, Name: "ab01"}
	snap = storage.Handle{Kind: storage.KindSnapshots, Name: "s1"}
	cfgH = storage.Handle{Kind: storage.KindConfig, Name: "config"}
)

func save(t *testing.T, st *Store, client, repo string, h storage.Handle, data []byte) {
	t.Helper()
	r, err := st.Open(context.Background(), client, repo)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = r.Close() }()
	if err := r.Save(context.Background(), h, data); err != nil {
		t.Fatalf("save %s: %v", h, err)
	}
}

func load(st *Store, client, repo string, h storage.Handle) ([]byte, error) {
	r, err := st.Open(context.Background(), client, repo)
	if err != nil {
		return nil, err
	}
	defer func() { _ = r.Close() }()
	return r.Load(context.Background(), h, 0, -1)
}

// TestStoreContract: repositories are made once, named validly, listed
// per client; objects are sealed (the store never holds the content in
// clear), written once, walked with their client, repository and handle,
// and counted by Usage.
func TestStoreContract(t *testing.T) {
	eachStore(t, func(t *testing.T, st *Store) {
		ctx := context.Background()
		if _, err := st.Open(ctx, "alice", "r"); !errors.Is(err, storage.ErrNoRepository) {
			t.Fatalf("open of a missing repository: %v", err)
		}
		for _, bad := range [][2]string{{"../x", "r"}, {"alice", "../r"}, {".trash", "r"}, {"alice", "a/b"}} {
			if err := st.Create(ctx, bad[0], bad[1]); !errors.Is(err, storage.ErrInvalidName) {
				t.Errorf("create %q/%q: %v", bad[0], bad[1], err)
			}
		}
		if err := st.Create(ctx, "alice", "r"); err != nil {
			t.Fatal(err)
		}
		if err := st.Create(ctx, "alice", "r"); !errors.Is(err, storage.ErrExists) {
			t.Fatalf("second create: %v", err)
		}
		for _, r := range []string{"r2", "r3"} {
			if err := st.Create(ctx, "alice", r); err != nil {
				t.Fatal(err)
			}
		}
		if err := st.Create(ctx, "bob", "b"); err != nil {
			t.Fatal(err)
		}
		if repos, err := st.Repos(ctx, "alice"); err != nil || !slices.Equal(sorted(repos), []string{"r", "r2", "r3"}) {
			t.Fatalf("repos of alice: %v, %v", repos, err)
		}
		if clients, err := st.Clients(ctx); err != nil || !slices.Equal(sorted(clients), []string{"alice", "bob"}) {
			t.Fatalf("clients: %v, %v", clients, err)
		}
		secret := bytes.Repeat([]byte("plain content "), 100)
		save(t, st, "alice", "r", pack, secret)
		save(t, st, "alice", "r", cfgH, []byte("config"))
		save(t, st, "alice", "r2", snap, []byte("snapshot"))
		save(t, st, "bob", "b", snap, []byte("bob's"))
		if got, err := load(st, "alice", "r", pack); err != nil || !bytes.Equal(got, secret) {
			t.Fatalf("load: %d bytes, %v", len(got), err)
		}
		// Bob's object does not open as Alice's: the seal binds the namespace.
		if _, err := load(st, "alice", "r2", storage.Handle{Kind: storage.KindSnapshots, Name: "s2"}); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("load of a missing object: %v", err)
		}
		r, err := st.Open(ctx, "alice", "r")
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Save(ctx, pack, []byte("other")); !errors.Is(err, storage.ErrExists) {
			t.Fatalf("second save: %v", err)
		}
		_ = r.Close()

		var walked []string
		if err := st.Walk(ctx, "", "", func(o Object) error {
			if !o.OK {
				t.Errorf("stray %s", o.Path)
			}
			if bytes.Contains(must(t, st, o), []byte("plain content")) {
				t.Errorf("%s holds the content in clear", o.Path)
			}
			walked = append(walked, o.NS.Client+"/"+o.NS.Repo+"/"+o.Handle.String())
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		want := []string{"alice/r/config", "alice/r/data/ab01", "alice/r2/snapshots/s1", "bob/b/snapshots/s1"}
		if !slices.Equal(sorted(walked), want) {
			t.Fatalf("walk: %v, want %v", walked, want)
		}
		u, err := st.Usage(ctx, "alice", func(n int64) int64 { return n })
		if err != nil || u.Repos != 3 || u.Objects != 3 || u.Charged != int64(len(secret)+len("config")+len("snapshot")) {
			t.Fatalf("usage of alice: %+v, %v", u, err)
		}
	})
}

// must reads an object's stored (sealed) bytes through the backend.
func must(t *testing.T, st *Store, o Object) []byte {
	t.Helper()
	r, err := st.b.openRepo(context.Background(), o.NS.Client+"/"+o.NS.Repo)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = r.Close() }()
	b, err := r.Load(context.Background(), o.Handle, 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func sorted(s []string) []string { slices.Sort(s); return s }

// TestStoreRacingWriters: of writers racing to save one name, exactly
// one succeeds and the others get ErrExists; the object loads whole.
func TestStoreRacingWriters(t *testing.T) {
	eachStore(t, func(t *testing.T, st *Store) {
		ctx := context.Background()
		if err := st.Create(ctx, "alice", "r"); err != nil {
			t.Fatal(err)
		}
		const n = 6
		var wg sync.WaitGroup
		errs := make([]error, n)
		datas := make([][]byte, n)
		for i := range n {
			datas[i] = bytes.Repeat([]byte{byte('a' + i)}, 300<<10)
			wg.Add(1)
			go func() {
				defer wg.Done()
				r, err := st.Open(ctx, "alice", "r")
				if err != nil {
					errs[i] = err
					return
				}
				defer func() { _ = r.Close() }()
				errs[i] = r.Save(ctx, pack, datas[i])
			}()
		}
		wg.Wait()
		won := -1
		for i, err := range errs {
			switch {
			case err == nil && won >= 0:
				t.Fatalf("writers %d and %d both succeeded", won, i)
			case err == nil:
				won = i
			case !errors.Is(err, storage.ErrExists):
				t.Fatalf("writer %d: %v", i, err)
			}
		}
		if won < 0 {
			t.Fatal("no writer succeeded")
		}
		if got, err := load(st, "alice", "r", pack); err != nil || !bytes.Equal(got, datas[won]) {
			t.Fatalf("load after the race: %d bytes, %v", len(got), err)
		}
	})
}

// TestStoreTrash: an object moved to the trash is gone from its
// repository, listed with its deletion time, and restored as it was; a
// purge removes only what is older than the cutoff.
func TestStoreTrash(t *testing.T) {
	eachStore(t, func(t *testing.T, st *Store) {
		ctx := context.Background()
		if err := st.Create(ctx, "alice", "r"); err != nil {
			t.Fatal(err)
		}
		save(t, st, "alice", "r", pack, []byte("pack"))
		save(t, st, "alice", "r", snap, []byte("snap"))
		t0 := time.Unix(1_700_000_000, 0).UTC()
		if err := st.Trash(ctx, "alice", "r", pack, t0); err != nil {
			t.Fatal(err)
		}
		if err := st.Trash(ctx, "alice", "r", pack, t0); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("trash of a missing object: %v", err)
		}
		if err := st.Trash(ctx, "alice", "r", snap, t0.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		if _, err := load(st, "alice", "r", pack); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("load of a trashed object: %v", err)
		}
		// The trash is not in the repositories' walk.
		_ = st.Walk(ctx, "", "", func(o Object) error { t.Errorf("walk found %s", o.Path); return nil })
		entries, err := st.TrashList(ctx, "alice", "")
		if err != nil || len(entries) != 2 || entries[0].Object != "data/ab01" || !entries[0].Deleted.Equal(t0) || entries[0].Size != 4 {
			t.Fatalf("trash: %+v, %v", entries, err)
		}
		if other, err := st.TrashList(ctx, "bob", ""); err != nil || len(other) != 0 {
			t.Fatalf("bob's trash: %+v, %v", other, err)
		}
		if restored, err := st.TrashRestore(ctx, entries[0]); err != nil || !restored {
			t.Fatalf("restore: %v, %v", restored, err)
		}
		if got, err := load(st, "alice", "r", pack); err != nil || string(got) != "pack" {
			t.Fatalf("load of the restored object: %q, %v", got, err)
		}
		if n, err := st.TrashPurge(ctx, t0.Add(time.Minute)); err != nil || n != 0 {
			t.Fatalf("purge before the snapshot's deletion: %d, %v", n, err)
		}
		if n, err := st.TrashPurge(ctx, t0.Add(2*time.Hour)); err != nil || n != 1 {
			t.Fatalf("purge: %d, %v", n, err)
		}
		if left, err := st.TrashList(ctx, "", ""); err != nil || len(left) != 0 {
			t.Fatalf("trash after the purge: %+v, %v", left, err)
		}
	})
}
