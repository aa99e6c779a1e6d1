package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"strconv"
	"testing"

	"github.com/coffer-backup/coffer/internal/server"
	"github.com/coffer-backup/coffer/internal/storage"
	"github.com/coffer-backup/coffer/internal/storage/s3/s3test"
)

// TestMeasureReplicationThroughput measures passes to versitygw and to a
// second coffer server with 1, 4 and 8 copies at once (docs/replication.md);
// it runs with COFFER_MEASURE_REPLICATION=1 only.
func TestMeasureReplicationThroughput(t *testing.T) {
	if os.Getenv("COFFER_MEASURE_REPLICATION") != "1" {
		t.Skip("set COFFER_MEASURE_REPLICATION=1 to measure")
	}
	bucket := s3test.Start(t)
	admin := newEnv(t)
	admin.extra = bucket.Env()
	shapes := []struct{ n, size int }{{400, 16 << 10}, {24, 4 << 20}}
	for si, shape := range shapes {
		pdir := serverInit(t, admin, "primary"+strconv.Itoa(si))
		fillPrimary(t, pdir, shape.n, shape.size)
		for _, parallel := range []int{1, 4, 8} {
			p := strconv.Itoa(parallel)
			name := "s3-" + p
			admin.must("server", "replicate", "add", "--dir", pdir, "--name", name, "--to", bucket.URL(bucket.NewBucket(t), "x"), "--parallel", p)
			offsite := fmt.Sprintf("coffer-%d-%s", si, p)
			offsiteServer(t, admin, pdir, offsite, "--parallel", p)
			for _, target := range []string{name, offsite} {
				rep, se, code := replicaRun(t, admin, pdir, target)
				if code != 0 {
					t.Fatalf("%s: exit %d\n%s", target, code, se)
				}
				secs := float64(rep.DurationMS) / 1000
				t.Logf("%s, %d objects of %d KiB: %d sent in %.2f s, %.0f objects/s, %.1f MiB/s", target, shape.n, shape.size>>10,
					rep.Sent, secs, float64(rep.Sent)/secs, float64(rep.SentBytes)/(1<<20)/secs)
			}
		}
	}
}

// fillPrimary stores n random objects of size bytes in the repository
// web1/home of the (stopped) server in dir.
func fillPrimary(t *testing.T, dir string, n, size int) {
	t.Helper()
	ctx := context.Background()
	store, err := server.OpenObjectsDir(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	if err := store.Create(ctx, "web1", "home"); err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(ctx, "web1", "home")
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.Save(ctx, storage.Handle{Kind: storage.KindConfig, Name: "config"}, []byte("config")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, size)
	for i := 0; i < n; i++ {
		_, _ = rand.Read(buf)
		if err := st.Save(ctx, storage.Handle{Kind: storage.KindData, Name: fmt.Sprintf("%064x", i+1)}, buf); err != nil {
			t.Fatal(err)
		}
	}
}
