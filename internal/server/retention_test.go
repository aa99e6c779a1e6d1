package server_test

import (
	"context"
	"testing"
	"time"

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
