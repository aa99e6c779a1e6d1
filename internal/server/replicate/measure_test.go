package replicate

import (
	"context"
	"fmt"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/coffer-backup/coffer/internal/serverdb"
	"github.com/coffer-backup/coffer/internal/storage/s3/s3test"
)

// The measurements of docs/replication.md; they run with
// COFFER_MEASURE_REPLICATION=1 only.
func measuring(t *testing.T) {
	if os.Getenv("COFFER_MEASURE_REPLICATION") != "1" {
		t.Skip("set COFFER_MEASURE_REPLICATION=1 to measure")
	}
}

// TestMeasureStatus times StatusOf over 10,000 objects, all replicated.
func TestMeasureStatus(t *testing.T) {
	measuring(t)
	ctx := context.Background()
	p := newPrimary(t)
	if err := p.db.AddReplicaTarget(ctx, serverdb.ReplicaTarget{Name: "off", Location: "s3:http://127.0.0.1:1/b", Created: time.Now()}); err != nil {
		t.Fatal(err)
	}
	k := RepoKey{"web1", "home"}
	hs := p.fill(t, k, 10000, 64)
	var recs []serverdb.ReplicaObject
	for _, h := range hs {
		recs = append(recs, serverdb.ReplicaObject{Target: "off", Client: k.Client, Repo: k.Repo, Kind: string(h.Kind), Name: h.Name, Size: 64, ReplicatedAt: time.Now()})
	}
	if err := p.db.PutReplicaObjects(ctx, recs); err != nil {
		t.Fatal(err)
	}
	// Before: every record read whole, every object's file looked at.
	before := func() {
		recs, err := p.db.ReplicaObjects(ctx, "off", "", "")
		if err != nil {
			t.Fatal(err)
		}
		have := map[string]bool{}
		for _, r := range recs {
			have[r.Kind+"/"+r.Name] = true
		}
		objs, err := p.src.objects(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		pending := 0
		for h := range objs {
			if !have[string(h.Kind)+"/"+h.Name] {
				pending++
			}
		}
		if pending != 3 {
			t.Fatalf("%d pending", pending)
		}
	}
	after := func() {
		st, err := StatusOf(ctx, p.src, p.db, "off", time.Now())
		if err != nil || st.PendingObjects != 3 || st.Replicated != 10000 {
			t.Fatalf("%+v, %v", st, err)
		}
	}
	var b, a []time.Duration
	for i := 0; i < 9; i++ {
		start := time.Now()
		before()
		b = append(b, time.Since(start))
		start = time.Now()
		after()
		a = append(a, time.Since(start))
	}
	slices.Sort(a)
	slices.Sort(b)
	t.Logf("status over 10,000 replicated objects, median of 9: before %s (min %s), after %s (min %s)", b[4], b[0], a[4], a[0])
}

// TestMeasureExtension times the extension of every copy's object lock
// (one PutObjectRetention each, recorded in batches) with 1, 4 and 8 at
// once.
func TestMeasureExtension(t *testing.T) {
	measuring(t)
	srv := s3test.Start(t)
	const n = 2000
	for i, parallel := range []int{1, 4, 8} {
		p := newPrimary(t)
		bucket := fmt.Sprintf("locked-%d", i)
		if err := p.addS3(t, srv, bucket, Settings{Name: "off", LockDays: 3, Parallel: parallel}); err != nil {
			t.Fatal(err)
		}
		p.fill(t, RepoKey{"web1", "home"}, n, 64)
		if rep, err := p.run(t, "off", nil, 0); err != nil || rep.Sent != n+3 {
			t.Fatalf("first pass: %+v, %v", rep, err)
		}
		// Two days and an hour on, every lock is within a third of its end.
		later := func() time.Time { return time.Now().Add(49 * time.Hour) }
		rep, err := p.run(t, "off", later, 0)
		if err != nil || rep.Extended != n+3 {
			t.Fatalf("extension pass: %+v, %v", rep, err)
		}
		t.Logf("versitygw, parallel %d: %d locks extended in %s (the whole pass): %.0f objects/s", parallel, rep.Extended,
			rep.Duration.Round(time.Millisecond), float64(rep.Extended)/rep.Duration.Seconds())
	}
}
