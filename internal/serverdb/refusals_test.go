package serverdb

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/coffer-backup/coffer/internal/tlspolicy"
)

// TestRefusalsAggregated: repeats of one day, source address and kind are
// one row that counts them; another kind, source or day is another row.
func TestRefusalsAggregated(t *testing.T) {
	t.Parallel()
	eachEngine(t, func(t *testing.T, db *Store, reopen func() (*Store, error)) {
		ctx := context.Background()
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
	})
}

// TestRefusalLogFlushedOnClose: what RefusalLog buffers is written by Close.
func TestRefusalLogFlushedOnClose(t *testing.T) {
	t.Parallel()
	eachEngine(t, func(t *testing.T, db *Store, reopen func() (*Store, error)) {
		ctx := context.Background()
		var err error
		if err := db.RefusalLog().LogRefusal(tlspolicy.RefusalRecord{Time: time.Now(), Peer: "192.0.2.9:1", Kind: tlspolicy.KindMalformed}); err != nil {
			t.Fatal(err)
		}
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
		db, err = reopen()
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		if recs, err := db.Refusals(ctx, time.Time{}); err != nil || len(recs) != 1 || recs[0].Kind != tlspolicy.KindMalformed {
			t.Fatalf("after reopening: %+v %v", recs, err)
		}
	})
}

// floodRecord is a refusal as large as tlspolicy lets a peer make it.
func floodRecord(at time.Time, source int) tlspolicy.RefusalRecord {
	long := strings.Repeat("x", 256)
	r := tlspolicy.RefusalRecord{
		Time: at, Peer: fmt.Sprintf("2001:db8::%x", source) + ":443", Kind: tlspolicy.KindVersion, Reason: long, SNI: long,
	}
	for range 8 {
		r.OfferedVersions = append(r.OfferedVersions, "TLS 1.0")
		r.OfferedALPN = append(r.OfferedALPN, long[:32])
	}
	for range 32 {
		r.OfferedSuites = append(r.OfferedSuites, "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256")
	}
	for range 16 {
		r.OfferedGroups = append(r.OfferedGroups, "SecP384r1MLKEM1024")
	}
	return r
}

// dbSize is the size of the database and its write-ahead log.
func dbSize(t *testing.T, path string) int64 {
	t.Helper()
	var n int64
	for _, p := range []string{path, path + "-wal"} {
		if fi, err := os.Stat(p); err == nil {
			n += fi.Size()
		}
	}
	return n
}

// TestRefusalFloodBounded (issue 10, item 11): a flood of maximal refusals
// from more addresses than a day may hold, day after day, with the days
// beyond retention pruned as `server run` does, leaves at most
// MaxRefusalRowsPerDay rows (plus one suppressed row) a day and a database
// that stops growing once retention is reached.
func TestRefusalFloodBounded(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, path := openTemp(t)
	const (
		days    = 8
		keep    = 2
		sources = MaxRefusalRowsPerDay + 500
		repeats = 3
	)
	start := time.Date(2026, 7, 1, 0, 0, 0, 0, time.UTC)
	var sizes []int64
	for d := range days {
		day := start.AddDate(0, 0, d)
		log := db.RefusalLog()
		for i := range sources * repeats {
			if err := log.LogRefusal(floodRecord(day.Add(time.Duration(i)*time.Second), i%sources)); err != nil {
				t.Fatal(err)
			}
		}
		recs, err := db.Refusals(ctx, day) // flushes the buffer
		if err != nil {
			t.Fatal(err)
		}
		total, suppressed := 0, 0
		for _, r := range recs {
			total += max(r.Count, 1)
			if r.Kind == tlspolicy.KindSuppressed {
				suppressed += r.Count
			}
		}
		if len(recs) > MaxRefusalRowsPerDay+1 || total != sources*repeats || suppressed == 0 {
			t.Fatalf("day %d: %d rows counting %d refusals (%d suppressed); want at most %d rows counting all %d",
				d, len(recs), total, suppressed, MaxRefusalRowsPerDay+1, sources*repeats)
		}
		if _, _, err := db.PruneBefore(ctx, day.AddDate(0, 0, -keep+1)); err != nil {
			t.Fatal(err)
		}
		sizes = append(sizes, dbSize(t, path))
	}
	t.Logf("database size after each day: %v", sizes)
	if recs, _ := db.Refusals(ctx, time.Time{}); len(recs) > keep*(MaxRefusalRowsPerDay+1) {
		t.Fatalf("%d rows kept, want at most %d days' worth", len(recs), keep)
	}
	if last, steady := sizes[days-1], sizes[keep+1]; last > steady+steady/4 {
		t.Fatalf("database grew from %d to %d bytes after retention was reached", steady, last)
	}
}
