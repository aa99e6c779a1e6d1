package repository

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/coffer-backup/coffer/internal/storage"
)

func TestRollbackFollowsReplacements(t *testing.T) {
	ctx := context.Background()
	r := testRepo(t)
	state := t.TempDir()
	s := &Snapshot{Time: time.Now(), Tree: NewRandomID(), Paths: []string{"/x"}, Hostname: "h"}
	if err := r.SaveSnapshot(ctx, s); err != nil {
		t.Fatal(err)
	}
	if err := r.RecordSeen(state, []ID{s.ID}); err != nil {
		t.Fatal(err)
	}
	repl, err := r.ReplaceSnapshots(ctx, "h", []ID{s.ID})
	if err != nil {
		t.Fatal(err)
	}
	n := repl[s.ID]
	if err := r.CheckRollback(ctx, state, []ID{n}); err != nil {
		t.Fatalf("a replaced snapshot was reported as rolled back: %v", err)
	}
	// Storage drops the replacement: the old snapshot is gone, its forget
	// record says it lives on as n, and n is gone too.
	if err := r.st.Remove(ctx, storage.Handle{Kind: storage.KindSnapshots, Name: n.String()}); err != nil {
		t.Fatal(err)
	}
	if err := r.CheckRollback(ctx, state, nil); !errors.Is(err, ErrRolledBack) {
		t.Fatalf("lost replacement not reported: %v", err)
	}
	// Forgetting the replacement properly is fine again.
	if err := r.ForgetSnapshots(ctx, "h", []ID{n}); err != nil {
		t.Fatal(err)
	}
	if err := r.CheckRollback(ctx, state, nil); err != nil {
		t.Fatalf("properly forgotten replacement reported: %v", err)
	}
}
