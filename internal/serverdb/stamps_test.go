package serverdb

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestStampsAndGrants(t *testing.T) {
	t.Parallel()
	eachEngine(t, func(t *testing.T, db *Store, reopen func() (*Store, error)) {
		ctx := context.Background()
		t0 := time.Unix(5000, 0).UTC()
		a, err := db.StampSnapshot(ctx, "web1", "main", "aa", t0)
		if err != nil || a.Seq != 1 || !a.Arrived.Equal(t0) {
			t.Fatalf("first stamp %+v, %v", a, err)
		}
		b, err := db.StampSnapshot(ctx, "web1", "main", "bb", t0.Add(time.Second))
		if err != nil || b.Seq != 2 {
			t.Fatalf("second stamp %+v, %v", b, err)
		}
		// Another repository and another client count on their own.
		if o, err := db.StampSnapshot(ctx, "web1", "other", "aa", t0); err != nil || o.Seq != 1 {
			t.Fatalf("other repository %+v, %v", o, err)
		}
		if o, err := db.StampSnapshot(ctx, "web2", "main", "aa", t0); err != nil || o.Seq != 1 {
			t.Fatalf("other client %+v, %v", o, err)
		}
		// A name keeps its first stamp.
		again, err := db.StampSnapshot(ctx, "web1", "main", "aa", t0.Add(time.Hour))
		if err != nil || again != a {
			t.Fatalf("stamped again: %+v, %v, want %+v", again, err, a)
		}
		// Deleted, then stored again: it keeps its first stamp and exists again.
		if err := db.SetStampDeleted(ctx, "web1", "main", "aa", t0.Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
		if st, _ := db.Stamps(ctx, "web1", "main"); !st[0].Deleted.Equal(t0.Add(time.Minute)) {
			t.Fatalf("deleted stamp %+v", st[0])
		}
		if again, err := db.StampSnapshot(ctx, "web1", "main", "aa", t0.Add(2*time.Hour)); err != nil || again != a {
			t.Fatalf("stored again after a deletion: %+v, %v, want %+v", again, err, a)
		}
		if _, err := db.StampSnapshot(ctx, "web1", "main", "", t0); !errors.Is(err, ErrInvalidRecord) {
			t.Fatalf("empty name: %v", err)
		}

		g := Grant{Job: "j1", Client: "web1", Repo: "main", NotBefore: t0, NotAfter: t0.Add(time.Hour), Snapshots: []string{"aa"}}
		if err := db.PutGrant(ctx, g); err != nil {
			t.Fatal(err)
		}
		if err := db.PutGrant(ctx, g); !errors.Is(err, ErrConflict) {
			t.Fatalf("second grant of a job: %v", err)
		}
		if err := db.PutGrant(ctx, Grant{Job: "j2", Client: "web1", Repo: "main", NotBefore: t0, NotAfter: t0}); !errors.Is(err, ErrInvalidRecord) {
			t.Fatalf("empty window: %v", err)
		}
		if err := db.PutGrant(ctx, Grant{Job: "j3", Client: "web1", Repo: "main", NotBefore: t0, NotAfter: t0.Add(time.Minute), Snapshots: []string{"a,b"}}); !errors.Is(err, ErrInvalidRecord) {
			t.Fatalf("a name with a comma: %v", err)
		}

		// Both survive a restart.
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
		db, err = reopen()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = db.Close() })
		st, err := db.Stamps(ctx, "web1", "main")
		if err != nil || len(st) != 2 || st[0] != a || st[1] != b {
			t.Fatalf("stamps after a restart: %+v, %v", st, err)
		}
		for _, c := range []struct {
			at   time.Time
			repo string
			want int
		}{{t0.Add(-time.Second), "main", 0}, {t0, "main", 1}, {t0.Add(time.Hour), "main", 1}, {t0.Add(time.Hour + 1), "main", 0}, {t0, "other", 0}} {
			gs, err := db.ActiveGrants(ctx, "web1", c.repo, c.at)
			if err != nil || len(gs) != c.want {
				t.Fatalf("grants at %s in %s: %+v, %v, want %d", c.at, c.repo, gs, err, c.want)
			}
			if c.want == 1 && (len(gs[0].Snapshots) != 1 || gs[0].Snapshots[0] != "aa" || !gs[0].Active(c.at)) {
				t.Fatalf("grant read back %+v", gs[0])
			}
		}
	})
}
