package replicate

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/coffer-backup/coffer/internal/atrest"
	"github.com/coffer-backup/coffer/internal/server/objstore"
	"github.com/coffer-backup/coffer/internal/serverdb"
	"github.com/coffer-backup/coffer/internal/storage"
	"github.com/coffer-backup/coffer/internal/storage/s3/s3test"
)

// primary is a primary server's state directory as a pass reads it: the
// object tree sealed with an at-rest key, and the state database.
type primary struct {
	dir string
	src Source
	db  *serverdb.SQLite
}

func newPrimary(t testing.TB) *primary {
	t.Helper()
	dir := t.TempDir()
	var key atrest.Key
	if _, err := rand.Read(key[:]); err != nil {
		t.Fatal(err)
	}
	db, err := serverdb.Open(context.Background(), filepath.Join(dir, serverdb.DefaultFile))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	if err := os.Mkdir(filepath.Join(dir, objstore.ObjectsDir), 0o700); err != nil {
		t.Fatal(err)
	}
	store, err := objstore.OpenDir(dir, &key)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	return &primary{dir: dir, src: Source{Store: store}, db: db}
}

// repo returns the primary's repository k, through the at-rest layer,
// made with a config object when missing.
func (p *primary) repo(t testing.TB, k RepoKey) *atrest.Storage {
	t.Helper()
	ctx := context.Background()
	err := p.src.Store.Create(ctx, k.Client, k.Repo)
	if err != nil && !errors.Is(err, storage.ErrExists) {
		t.Fatal(err)
	}
	st, oerr := p.src.Open(ctx, k)
	if oerr != nil {
		t.Fatal(oerr)
	}
	if err == nil {
		if err := st.Save(ctx, storage.Handle{Kind: storage.KindConfig, Name: "config"}, []byte("config of "+k.String())); err != nil {
			t.Fatal(err)
		}
	}
	return st
}

// fill stores n packs of size bytes (random) and one index and snapshot
// in k, and returns the packs' handles.
func (p *primary) fill(t testing.TB, k RepoKey, n, size int) []storage.Handle {
	t.Helper()
	st := p.repo(t, k)
	defer st.Close()
	ctx := context.Background()
	var hs []storage.Handle
	buf := make([]byte, size)
	for i := 0; i < n; i++ {
		if _, err := rand.Read(buf); err != nil {
			t.Fatal(err)
		}
		h := storage.Handle{Kind: storage.KindData, Name: fmt.Sprintf("%064x", i+1)}
		if err := st.Save(ctx, h, buf); err != nil && !errors.Is(err, storage.ErrExists) {
			t.Fatal(err)
		}
		hs = append(hs, h)
	}
	for _, h := range []storage.Handle{{Kind: storage.KindIndex, Name: fmt.Sprintf("%064x", n)}, {Kind: storage.KindSnapshots, Name: fmt.Sprintf("%064x", n)}} {
		if err := st.Save(ctx, h, []byte("names the packs")); err != nil && !errors.Is(err, storage.ErrExists) {
			t.Fatal(err)
		}
	}
	return hs
}

// remove deletes h from the primary's k.
func (p *primary) remove(t testing.TB, k RepoKey, h storage.Handle) {
	t.Helper()
	st := p.repo(t, k)
	defer st.Close()
	if err := st.Remove(context.Background(), h); err != nil {
		t.Fatal(err)
	}
}

// addS3 adds an S3 target on srv with s's settings and srv's credentials.
func (p *primary) addS3(t testing.TB, srv *s3test.Server, bucket string, s Settings) error {
	t.Helper()
	s.Location = srv.URL(bucket, "offsite")
	env := map[string]string{"AWS_ACCESS_KEY_ID": srv.AccessKey, "AWS_SECRET_ACCESS_KEY": srv.SecretKey, "AWS_DEFAULT_REGION": "us-east-1"}
	return Add(context.Background(), p.dir, p.db, s, AddOptions{Getenv: func(k string) string { return env[k] }})
}

// run makes one pass with the clock now (nil: time.Now).
func (p *primary) run(t testing.TB, name string, now func() time.Time, parallel int) (*Report, error) {
	t.Helper()
	return Run(context.Background(), name, PassOptions{Dir: p.dir, Source: p.src, DB: p.db, Now: now, Parallel: parallel})
}
