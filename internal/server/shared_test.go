package server_test

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/coffer-backup/coffer/internal/server"
	"github.com/coffer-backup/coffer/internal/server/servertest"
	"github.com/coffer-backup/coffer/internal/server/state"
	"github.com/coffer-backup/coffer/internal/serverdb"
	"github.com/coffer-backup/coffer/internal/storage/s3/s3test"
)

// copyStateDir copies the files of the state directory from to to (its
// keys and configuration: what a second server runs from), without the
// database.
func copyStateDir(t *testing.T, from, to string) {
	t.Helper()
	err := filepath.WalkDir(from, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(to, rel), 0o700)
		}
		if strings.HasPrefix(rel, serverdb.DefaultFile) {
			return nil // the database, its -wal and -shm files
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(to, rel), b, 0o600)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestTwoServersShareOneQuota runs two servers from copies of one state
// directory, sharing one database and one bucket: a repository made
// through one is there through the other and cannot be made twice, and
// uploads racing through both never take the client past its quota,
// which both enforce as one; the recorded usage is what the bucket holds.
func TestTwoServersShareOneQuota(t *testing.T) {
	s3srv := s3test.Start(t)
	for _, kv := range s3srv.Env() {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	loc := s3srv.URL("shared", "coffer")
	if _, err := server.ProbeStorage(context.Background(), loc, ""); err != nil {
		t.Fatal(err)
	}
	dirA, dirB := t.TempDir(), t.TempDir()
	if _, err := state.Init(context.Background(), dirA, state.InitOptions{Names: []string{"127.0.0.1"}, Storage: loc}); err != nil {
		t.Fatal(err)
	}
	copyStateDir(t, dirA, dirB)
	a := servertest.Start(t, servertest.Options{Dir: dirA})
	b := servertest.Start(t, servertest.Options{Dir: dirB, DB: a.DB})
	const quota = 1 << 20
	id := a.Enroll(t, "alice", func(c *serverdb.Client) { c.QuotaBytes = quota })
	if err := b.Server.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	ca, cb := newClient(t, a, id), newClient(t, b, id)
	ca.mustStatus("POST", "/v1/repos/r", nil, 201)
	cb.mustStatus("HEAD", "/v1/repos/r", nil, 204)
	cb.mustStatus("POST", "/v1/repos/r", nil, 409)

	// 20 uploads of 100 KiB, through both servers at once: 9 fit beside
	// the repository's charge.
	const size = 100 << 10
	var wg sync.WaitGroup
	var stored, refused atomic.Int64
	for i := range 20 {
		c := ca
		if i%2 == 1 {
			c = cb
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			switch r := c.do("PUT", fmt.Sprintf("/v1/repos/r/data/p%02d", i), make([]byte, size), nil); r.status {
			case 201:
				stored.Add(1)
			case 507:
				refused.Add(1)
			default:
				t.Errorf("upload %d: %d %s", i, r.status, r.body)
			}
		}()
	}
	wg.Wait()
	if want := int64((quota - server.RepoCharge) / size); stored.Load() != want || refused.Load() != 20-want {
		t.Fatalf("%d stored, %d refused; want %d stored", stored.Load(), refused.Load(), want)
	}
	u, err := a.DB.Usage(context.Background(), "alice")
	if err != nil || u.Charged != server.RepoCharge+stored.Load()*size || u.Objects != stored.Load() || u.Repos != 1 {
		t.Fatalf("recorded usage %+v, %v; want %d objects", u, err, stored.Load())
	}
	// Removing through one server frees quota for the other.
	ca.mustStatus("PUT", "/v1/repos/r/data/q1", make([]byte, size), 507)
	for i := range 20 {
		if r := cb.do("HEAD", fmt.Sprintf("/v1/repos/r/data/p%02d", i), nil, nil); r.status == 200 {
			if err := a.DB.SetAllowDelete(context.Background(), "alice", true, a.Clock.Now()); err != nil {
				t.Fatal(err)
			}
			_ = a.Server.Refresh(context.Background())
			_ = b.Server.Refresh(context.Background())
			cb.mustStatus("DELETE", fmt.Sprintf("/v1/repos/r/data/p%02d", i), nil, 204)
			break
		}
	}
	ca.mustStatus("PUT", "/v1/repos/r/data/q1", make([]byte, size), 201)

	// A usage gone wrong (a server killed mid-upload) is counted again
	// from the bucket.
	want := serverdb.Usage{Client: "alice", Charged: server.RepoCharge + stored.Load()*size, Objects: stored.Load(), Repos: 1}
	if err := a.DB.SetUsage(context.Background(), serverdb.Usage{Client: "alice", Charged: 1 << 40}); err != nil {
		t.Fatal(err)
	}
	if n, err := server.RecountUsage(context.Background(), dirB, a.DB); err != nil || n != 1 {
		t.Fatalf("recount: %d, %v", n, err)
	}
	if u, err := a.DB.Usage(context.Background(), "alice"); err != nil || u != want {
		t.Fatalf("usage after the recount %+v, %v; want %+v", u, err, want)
	}
}
