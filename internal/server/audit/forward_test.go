package audit

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/coffer-backup/coffer/internal/auditlog"
	"github.com/coffer-backup/coffer/internal/serverdb"
)

// An entry a Forwarder records reaches the writer's log as it was, with
// the event's ID, in event order; one that does not decode is recorded as
// unrecordable, and the feed goes on.
func TestForwardedEntries(t *testing.T) {
	dir, db, key := stateDir(t)
	tr := openTrail(t, dir, db, key)
	defer tr.Close(context.Background())
	fw := &Forwarder{DB: db}
	ctx := context.Background()
	logEvent(t, db, serverdb.Event{Client: "web1", Action: serverdb.ActionEnroll})
	e := auditlog.Entry{Actor: auditlog.Actor{Name: "alice", Role: "operator"}, Action: "fleet-policy", Target: "group:web",
		Outcome: auditlog.OutcomeOK, Details: map[string]string{"detail": "keep-last=3"}}
	if err := fw.Record(ctx, e); err != nil {
		t.Fatal(err)
	}
	logEvent(t, db, serverdb.Event{Action: serverdb.ActionAuditEntry, Detail: "{not json"})
	if err := fw.Record(ctx, auditlog.Entry{Action: auditlog.ActionCheckpoint}); !errors.Is(err, auditlog.ErrInvalidEntry) {
		t.Fatalf("forwarding a checkpoint: %v", err)
	}
	if err := tr.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	got := entries(t, dir)
	if len(got) != 3 {
		t.Fatalf("%d entries, want 3: %+v", len(got), got)
	}
	f := got[1]
	if f.Actor != e.Actor || f.Action != e.Action || f.Target != e.Target || f.Details["detail"] != "keep-last=3" || f.Details["event"] != "2" {
		t.Fatalf("forwarded entry = %+v", f)
	}
	if got[2].Action != "event-unrecordable" || !strings.Contains(got[2].Details["error"], "forwarded entry") {
		t.Fatalf("undecodable forwarded entry = %+v", got[2])
	}
}

// A trail whose head another server replaced stops appending: the chain
// the database keeps never forks.
func TestTrailStopsWhenAnotherWrites(t *testing.T) {
	dir, db, key := stateDir(t)
	tr := openTrail(t, dir, db, key)
	ctx := context.Background()
	logEvent(t, db, serverdb.Event{Client: "web1", Action: serverdb.ActionEnroll})
	if err := tr.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	kept, err := db.AuditHead(ctx)
	if err != nil {
		t.Fatal(err)
	}
	other := kept
	other.Seq++
	other.Hash[0] ^= 1
	if err := db.SwapAuditHead(ctx, kept, other); err != nil {
		t.Fatal(err)
	}
	logEvent(t, db, serverdb.Event{Client: "web2", Action: serverdb.ActionEnroll})
	if err := tr.Sync(ctx); !errors.Is(err, serverdb.ErrConflict) {
		t.Fatalf("Sync after another server's head: %v, want ErrConflict", err)
	}
	if tr.Lost() == nil {
		t.Fatal("Lost() = nil")
	}
	n := len(entries(t, dir))
	if err := tr.Sync(ctx); err == nil {
		t.Fatal("a stopped trail synced")
	}
	if err := tr.Record(ctx, auditlog.Entry{Action: "x", Outcome: "ok"}); err == nil {
		t.Fatal("a stopped trail recorded")
	}
	_ = tr.Close(ctx)
	if m := len(entries(t, dir)); m != n {
		t.Fatalf("a stopped trail appended %d entries", m-n)
	}
	if h, _ := db.AuditHead(ctx); h != other {
		t.Fatalf("kept head %+v, want the other server's %+v", h, other)
	}
}
