package serverdb

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/coffer-backup/coffer/internal/tlspolicy"
)

// TestRefusalsAggregated: repeats of one day, source address and kind are
// one row that counts them; another kind, source or day is another row.
func TestRefusalsAggregated(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, _ := openTemp(t)
	t0 := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	log := db.RefusalLog()
	for i := range 100 {
		r := tlspolicy.RefusalRecord{Time: t0.Add(time.Duration(i) * time.Second), Peer: fmt.Sprintf("192.0.2.1:%d", 1000+i), Kind: tlspolicy.KindTimeout, Reason: "idle"}
		if err := log.LogRefusal(r); err != nil {
			t.Fatal(err)
		}
	}
	for _, r := range []tlspolicy.RefusalRecord{
		{Time: t0, Peer: "192.0.2.1:1", Kind: tlspolicy.KindVersion},
		{Time: t0, Peer: "192.0.2.2:1", Kind: tlspolicy.KindTimeout},
		{Time: t0.AddDate(0, 0, 1), Peer: "192.0.2.1:1", Kind: tlspolicy.KindTimeout},
	} {
		if err := db.LogRefusal(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	recs, err := db.Refusals(ctx, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 4 {
		t.Fatalf("%d rows, want 4: %+v", len(recs), recs)
	}
	counts := map[string]int{}
	for _, r := range recs {
		counts[r.Time.Format(time.DateOnly)+" "+r.Peer+" "+r.Kind] = max(r.Count, 1)
	}
	want := map[string]int{
		"2026-05-01 192.0.2.1:1000 timeout": 100, // the first record, counting all
		"2026-05-01 192.0.2.1:1 version":    1,
		"2026-05-01 192.0.2.2:1 timeout":    1,
		"2026-05-02 192.0.2.1:1 timeout":    1,
	}
	for k, n := range want {
		if counts[k] != n {
			t.Errorf("%s: count %d, want %d (all: %v)", k, counts[k], n, counts)
		}
	}
	// A row is returned when its last refusal is at or after since.
	if recs, _ := db.Refusals(ctx, t0.Add(90*time.Second)); len(recs) != 2 {
		t.Errorf("since the 90th second: %d rows, want the aggregated one and the next day's", len(recs))
	}
}

// TestRefusalLogFlushedOnClose: what RefusalLog buffers is written by Close.
func TestRefusalLogFlushedOnClose(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), DefaultFile)
	db, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.RefusalLog().LogRefusal(tlspolicy.RefusalRecord{Time: time.Now(), Peer: "192.0.2.9:1", Kind: tlspolicy.KindMalformed}); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db, err = Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if recs, err := db.Refusals(ctx, time.Time{}); err != nil || len(recs) != 1 || recs[0].Kind != tlspolicy.KindMalformed {
		t.Fatalf("after reopening: %+v %v", recs, err)
	}
}
