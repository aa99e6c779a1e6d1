package serverdb

import (
	"context"
	"errors"
	"reflect"
	"sort"
	"testing"
	"time"
)

func TestReplicaTargetsAndObjects(t *testing.T) {
	t.Parallel()
	eachEngine(t, func(t *testing.T, db *Store, _ func() (*Store, error)) {
		ctx := context.Background()
		t0 := time.Unix(7000, 0).UTC()
		tgt := ReplicaTarget{Name: "off", Location: "s3:http://h/b", Clients: []string{"web1"}, KeepDeleted: time.Hour,
			LockDays: 30, Parallel: 8, AlertLag: 6 * time.Hour, Created: t0}
		if err := db.AddReplicaTarget(ctx, tgt); err != nil {
			t.Fatal(err)
		}
		if err := db.AddReplicaTarget(ctx, tgt); !errors.Is(err, ErrDuplicate) {
			t.Fatalf("added twice: %v", err)
		}
		for _, bad := range []ReplicaTarget{{Name: "x", Location: "l", LockDays: -1}, {Name: "x", Location: "l", Parallel: -1}, {Name: "x", Location: "l", AlertLag: -1}} {
			if err := db.AddReplicaTarget(ctx, bad); !errors.Is(err, ErrInvalidRecord) {
				t.Fatalf("%+v: %v", bad, err)
			}
		}
		got, err := db.ReplicaTarget(ctx, "off")
		if err != nil || !reflect.DeepEqual(got, tgt) {
			t.Fatalf("read back %+v, %v; want %+v", got, err, tgt)
		}
		objs := []ReplicaObject{
			{Target: "off", Client: "web1", Repo: "home", Kind: "data", Name: "aa", Size: 3, SHA256: "s", Tag: "e", ReplicatedAt: t0, RetainUntil: t0.Add(48 * time.Hour)},
			{Target: "off", Client: "web1", Repo: "home", Kind: "data", Name: "bb", Size: 4, SHA256: "s2", Tag: "e2", ReplicatedAt: t0, DeletedAt: t0.Add(time.Minute), RetainUntil: t0.Add(time.Hour)},
			{Target: "off", Client: "web1", Repo: "home", Kind: "index", Name: "cc", Size: 5, SHA256: "s3", Tag: "e3", ReplicatedAt: t0, RetainUntil: t0.Add(24 * time.Hour)},
		}
		if err := db.PutReplicaObjects(ctx, objs); err != nil {
			t.Fatal(err)
		}
		objs[0].RetainUntil = t0.Add(96 * time.Hour) // an extension updates the row
		if err := db.PutReplicaObjects(ctx, objs[:1]); err != nil {
			t.Fatal(err)
		}
		back, err := db.ReplicaObjects(ctx, "off", "web1", "home")
		if err != nil || len(back) != 3 {
			t.Fatalf("objects %+v, %v", back, err)
		}
		sort.Slice(back, func(i, j int) bool { return back[i].Name < back[j].Name })
		if !reflect.DeepEqual(back, objs) {
			t.Fatalf("read back %+v, want %+v", back, objs)
		}
		keys, err := db.ReplicaKeys(ctx, "off")
		sort.Slice(keys, func(i, j int) bool { return keys[i].Name < keys[j].Name })
		if err != nil || len(keys) != 3 || keys[1] != (ReplicaKey{"web1", "home", "data", "bb"}) {
			t.Fatalf("keys %+v, %v", keys, err)
		}
		// At t0+30m the deleted bb is still locked; at t0+2h it is not.
		sum, err := db.ReplicaSummaryOf(ctx, "off", t0.Add(30*time.Minute))
		want := ReplicaSummary{Objects: 2, Bytes: 8, Deleted: 1, Locked: 1, EarliestRetention: t0.Add(24 * time.Hour)}
		if err != nil || sum != want {
			t.Fatalf("summary %+v, %v; want %+v", sum, err, want)
		}
		if sum, err := db.ReplicaSummaryOf(ctx, "off", t0.Add(2*time.Hour)); err != nil || sum.Locked != 0 {
			t.Fatalf("summary after the lock %+v, %v", sum, err)
		}
		if sum, err := db.ReplicaSummaryOf(ctx, "none", t0); err != nil || sum != (ReplicaSummary{}) {
			t.Fatalf("summary of no target %+v, %v", sum, err)
		}
		// A batch that fails stores none of it.
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		if err := db.PutReplicaObjects(cctx, []ReplicaObject{{Target: "off", Client: "web1", Repo: "home", Kind: "data", Name: "dd", ReplicatedAt: t0}}); err == nil {
			t.Fatal("a cancelled batch succeeded")
		}
		if back, _ := db.ReplicaObjects(ctx, "off", "", ""); len(back) != 3 {
			t.Fatalf("after a failed batch: %d objects", len(back))
		}
	})
}
