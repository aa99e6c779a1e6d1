package server

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/coffer-backup/coffer/internal/serverdb"
	"github.com/coffer-backup/coffer/internal/tlspolicy"
)

// TestPruneLogKeepsDays: refusals and events older than the kept days go,
// newer ones stay (issue 10, item 11), and so do events the audit log has
// not taken yet (issue 12).
func TestPruneLogKeepsDays(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := openStateDB(t, t.TempDir())
	now := time.Date(2026, 9, 30, 12, 0, 0, 0, time.UTC)
	for _, age := range []int{100, 5} {
		at := now.AddDate(0, 0, -age)
		if err := db.LogRefusal(ctx, tlspolicy.RefusalRecord{Time: at, Peer: "192.0.2.1:1", Kind: tlspolicy.KindTimeout}); err != nil {
			t.Fatal(err)
		}
		if err := db.LogEvent(ctx, serverdb.Event{Time: at, Action: serverdb.ActionAlert, Detail: "x"}); err != nil {
			t.Fatal(err)
		}
	}
	// The audit log took those two; an old event it has not taken yet stays.
	if err := db.SetAuditHead(ctx, serverdb.AuditHead{Seq: 2, EventID: 2}); err != nil {
		t.Fatal(err)
	}
	if err := db.LogEvent(ctx, serverdb.Event{Time: now.AddDate(0, 0, -100), Action: serverdb.ActionAlert, Detail: "not in the audit log yet"}); err != nil {
		t.Fatal(err)
	}
	pruneLog(ctx, db, 30, now, slog.New(slog.NewTextHandler(io.Discard, nil)))
	refs, err := db.Refusals(ctx, time.Time{})
	if err != nil || len(refs) != 1 || !refs[0].Time.Equal(now.AddDate(0, 0, -5)) {
		t.Fatalf("refusals after pruning: %+v %v", refs, err)
	}
	evs, err := db.Events(ctx, time.Time{}, 0)
	if err != nil || len(evs) != 2 || evs[0].Detail != "not in the audit log yet" || !evs[1].Time.Equal(now.AddDate(0, 0, -5)) {
		t.Fatalf("events after pruning: %+v %v", evs, err)
	}
}
