package server_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coffer-backup/coffer/internal/server"
	"github.com/coffer-backup/coffer/internal/serverdb"

	"github.com/coffer-backup/coffer/internal/server/servertest"
	"github.com/coffer-backup/coffer/internal/wire"
)

// Every snapshot object gets a stamp on the server clock with the
// repository's next sequence number; the client's claims do not move it,
// and the stamps survive a restart.
func TestSnapshotStamps(t *testing.T) {
	dir := t.TempDir()
	env := servertest.Start(t, servertest.Options{Dir: dir})
	c := newClient(t, env, env.Enroll(t, "alice", nil))
	c.mustStatus("POST", "/v1/repos/r", nil, 201)
	before := env.Clock.Now()
	c.mustStatus("PUT", "/v1/repos/r/snapshots/s1", []byte("one"), 201)
	if r := c.do("PUT", "/v1/repos/r/snapshots/s2", []byte("two"), map[string]string{wire.HeaderReceived: "1999-01-01T00:00:00Z"}); r.status != 201 {
		t.Fatalf("PUT: %d", r.status)
	}
	c.mustStatus("PUT", "/v1/repos/r/data/ab", []byte("pack"), 201) // not a snapshot: no stamp
	c.mustStatus("PUT", "/v1/repos/r/snapshots/s1", []byte("one"), 409)
	env.Stop(t)

	env2 := servertest.Start(t, servertest.Options{Dir: dir})
	st, err := env2.DB.Stamps(context.Background(), "alice", "r")
	if err != nil || len(st) != 2 {
		t.Fatalf("stamps after a restart: %+v, %v", st, err)
	}
	if st[0].Name != "s1" || st[0].Seq != 1 || st[1].Name != "s2" || st[1].Seq != 2 {
		t.Fatalf("stamps %+v", st)
	}
	if d := st[0].Arrived.Sub(before); d < -time.Second || d > time.Minute {
		t.Errorf("s1 arrived %s, the server clock said %s", st[0].Arrived, before)
	}
	if st[1].Arrived.Before(st[0].Arrived) || st[1].Arrived.Year() == 1999 {
		t.Errorf("s2 arrived %s, s1 %s: the client's claim counted", st[1].Arrived, st[0].Arrived)
	}
}

// Outside a grant append-only holds; inside one the host deletes exactly
// the granted snapshots and, in the window, what prune deletes; deletions
// go to the trash, audited, and come back with RestoreTrash.
func TestDeletionUnderGrant(t *testing.T) {
	env := servertest.Start(t, servertest.Options{})
	c := newClient(t, env, env.Enroll(t, "alice", nil))
	ctx := context.Background()
	c.mustStatus("POST", "/v1/repos/r", nil, 201)
	for _, o := range []string{"snapshots/s1", "snapshots/s2", "data/ab01", "index/i1", "keys/k1"} {
		c.mustStatus("PUT", "/v1/repos/r/"+o, []byte("content of "+o), 201)
	}
	c.mustStatus("DELETE", "/v1/repos/r/snapshots/s1", nil, 403)
	c.mustStatus("DELETE", "/v1/repos/r/data/ab01", nil, 403)

	now := env.Clock.Now()
	// An expired grant and one for another repository grant nothing.
	for _, g := range []serverdb.Grant{
		{Job: "old", Client: "alice", Repo: "r", NotBefore: now.Add(-2 * time.Hour), NotAfter: now.Add(-time.Hour), Snapshots: []string{"s1"}},
		{Job: "other", Client: "alice", Repo: "q", NotBefore: now.Add(-time.Minute), NotAfter: now.Add(time.Hour), Snapshots: []string{"s1"}},
	} {
		if err := env.DB.PutGrant(ctx, g); err != nil {
			t.Fatal(err)
		}
	}
	c.mustStatus("DELETE", "/v1/repos/r/snapshots/s1", nil, 403)
	c.mustStatus("DELETE", "/v1/repos/r/index/i1", nil, 403)

	if err := env.DB.PutGrant(ctx, serverdb.Grant{Job: "j1", Client: "alice", Repo: "r", NotBefore: now.Add(-time.Minute), NotAfter: now.Add(time.Hour), Snapshots: []string{"s1"}}); err != nil {
		t.Fatal(err)
	}
	c.mustStatus("DELETE", "/v1/repos/r/snapshots/s1", nil, 204)
	c.mustStatus("DELETE", "/v1/repos/r/snapshots/s2", nil, 403) // not granted
	// The pack is read first, so the server holds it open: once it is in
	// the trash, it is gone for the client all the same.
	c.mustStatus("GET", "/v1/repos/r/data/ab01", nil, 200)
	c.mustStatus("DELETE", "/v1/repos/r/data/ab01", nil, 204)
	c.mustStatus("GET", "/v1/repos/r/data/ab01", nil, 404)
	c.mustStatus("DELETE", "/v1/repos/r/index/i1", nil, 204)
	c.mustStatus("DELETE", "/v1/repos/r/keys/k1", nil, 403) // keys never
	c.mustStatus("DELETE", "/v1/repos/r/config/config", nil, 403)
	c.mustStatus("GET", "/v1/repos/r/snapshots/s1", nil, 404)

	events, err := env.DB.Events(ctx, time.Time{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range events {
		if e.Client == "alice" && (e.Action == serverdb.ActionDelete || e.Action == serverdb.ActionDeleteRefused) {
			got = append(got, e.Action+" "+e.Object)
			if e.Action == serverdb.ActionDelete && !strings.Contains(e.Detail, "grant=j1 to=trash") {
				t.Errorf("deletion event %+v does not name its grant", e)
			}
		}
	}
	want := "delete-refused snapshots/s1,delete-refused data/ab01,delete-refused snapshots/s1,delete-refused index/i1," +
		"delete snapshots/s1,delete-refused snapshots/s2,delete data/ab01,delete index/i1,delete-refused keys/k1,delete-refused config"
	if strings.Join(got, ",") != want {
		t.Errorf("audit\n got %s\nwant %s", strings.Join(got, ","), want)
	}
	if st, _ := env.DB.Stamps(ctx, "alice", "r"); len(st) != 2 || st[0].Deleted.IsZero() || !st[1].Deleted.IsZero() {
		t.Errorf("stamps after the deletion: %+v", st)
	}

	entries, err := server.ListTrash(ctx, env.Dir, "alice", "")
	if err != nil || len(entries) != 3 {
		t.Fatalf("trash: %+v, %v", entries, err)
	}
	if n, err := server.ListTrash(ctx, env.Dir, "bob", ""); err != nil || len(n) != 0 {
		t.Fatalf("another client's trash: %+v, %v", n, err)
	}
	// Sealed as it was: the trash holds no plaintext.
	raw, err := os.ReadFile(filepath.Join(env.Dir, server.TrashDir, "alice", "r", strconv.FormatInt(entries[0].Deleted.UnixNano(), 10), "snapshots", "s1"))
	if err != nil || bytes.Contains(raw, []byte("content of")) {
		t.Fatalf("trash copy: %v, plaintext %v", err, bytes.Contains(raw, []byte("content of")))
	}
	if _, err := server.RestoreTrash(ctx, env.Dir, env.DB, "bob", "", time.Now()); !errors.Is(err, server.ErrNoTrash) {
		t.Fatalf("restore with nothing in the trash: %v", err)
	}
	done, err := server.RestoreTrash(ctx, env.Dir, env.DB, "alice", "r", time.Now())
	if err != nil || len(done) != 3 {
		t.Fatalf("restore: %+v, %v", done, err)
	}
	for _, o := range []string{"snapshots/s1", "data/ab01", "index/i1"} {
		if r := c.mustStatus("GET", "/v1/repos/r/"+o, nil, 200); string(r.body) != "content of "+o {
			t.Errorf("%s after the restore: %q", o, r.body)
		}
	}
	if st, _ := env.DB.Stamps(ctx, "alice", "r"); !st[0].Deleted.IsZero() {
		t.Errorf("s1's stamp still deleted after the restore: %+v", st[0])
	}
	if left, _ := server.ListTrash(ctx, env.Dir, "", ""); len(left) != 0 {
		t.Errorf("trash after the restore: %+v", left)
	}

	// Purged after the trash days.
	c.mustStatus("DELETE", "/v1/repos/r/data/ab01", nil, 204)
	if n, err := env.Server.PurgeTrash(ctx, 7, time.Now().AddDate(0, 0, 6)); err != nil || n != 0 {
		t.Fatalf("purge before the trash days: %d, %v", n, err)
	}
	if n, err := env.Server.PurgeTrash(ctx, 7, time.Now().AddDate(0, 0, 8)); err != nil || n != 1 {
		t.Fatalf("purge after the trash days: %d, %v", n, err)
	}
	if left, _ := server.ListTrash(ctx, env.Dir, "", ""); len(left) != 0 {
		t.Errorf("trash after the purge: %+v", left)
	}
}
