package replicate

import (
	"context"
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

// TestMeasureThroughput times passes to versitygw with 1 and 4 copies at
// once, and the extension of every copy's lock.
func TestMeasureThroughput(t *testing.T) {
	measuring(t)
	srv := s3test.Start(t)
	for _, parallel := range []int{1, 4, 8} {
		for _, shape := range []struct {
			n, size int
		}{{400, 16 << 10}, {24, 4 << 20}} {
			p := newPrimary(t)
			name := "off"
			bucket := srv.NewBucket(t)
			if err := p.addS3(t, srv, bucket, Settings{Name: name, Parallel: parallel}); err != nil {
				t.Fatal(err)
			}
			p.fill(t, RepoKey{"web1", "home"}, shape.n, shape.size)
			rep, err := p.run(t, name, nil, 0)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("S3, parallel %d, %d objects of %d KiB: %d sent, %.1f objects/s, %.1f MiB/s", parallel, shape.n, shape.size>>10, rep.Sent,
				float64(rep.Sent)/rep.Duration.Seconds(), float64(rep.SentBytes)/(1<<20)/rep.Duration.Seconds())
		}
	}
}
