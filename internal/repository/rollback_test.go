package repository

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coffer-backup/coffer/internal/keyring"
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

// TestKeyTermRollback: a storage that hides the newest key term is
// refused, before anything could be sealed under the older one.
func TestKeyTermRollback(t *testing.T) {
	ctx := context.Background()
	r := testRepo(t)
	state := t.TempDir()
	if err := r.RecordSeen(state, nil); err != nil {
		t.Fatal(err)
	}
	term, err := r.RotateKey(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.CheckTerm(state); err != nil {
		t.Fatalf("current keyring refused: %v", err)
	}
	if err := r.RecordTerm(state); err != nil {
		t.Fatal(err)
	}
	// Reopened through storage that no longer shows the new term.
	if err := r.st.Remove(ctx, keyring.TermHandle(term.Number)); err != nil {
		t.Fatal(err)
	}
	old, err := Open(ctx, r.st, []byte("pw"))
	if err != nil {
		t.Fatal(err)
	}
	if err := old.CheckTerm(state); !errors.Is(err, ErrRolledBack) {
		t.Fatalf("hidden term not reported: %v", err)
	}
	if err := old.CheckRollback(ctx, state, nil); !errors.Is(err, ErrRolledBack) {
		t.Fatalf("hidden term not reported by the full check: %v", err)
	}
	// Recording what the old keyring shows never lowers the term.
	if err := old.RecordSeen(state, nil); err != nil {
		t.Fatal(err)
	}
	if err := old.CheckTerm(state); !errors.Is(err, ErrRolledBack) {
		t.Fatalf("recording the old keyring lowered the pinned term: %v", err)
	}
	// A client without state has nothing to compare with.
	if err := old.CheckTerm(t.TempDir()); err != nil {
		t.Fatalf("fresh client refused: %v", err)
	}
}

// TestStateFileWrite: the local state is owner-only, replaced whole on
// every update, and leaves no temporary file beside it.
func TestStateFileWrite(t *testing.T) {
	t.Parallel()
	r := testRepo(t)
	state := t.TempDir()
	ids := []ID{NewRandomID(), NewRandomID()}
	for i := range ids {
		if err := r.RecordSeen(state, ids[:i+1]); err != nil {
			t.Fatal(err)
		}
	}
	path := StateFile(state, r.id)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("state file mode %v, want 0600", fi.Mode().Perm())
	}
	st, err := loadState(path)
	if err != nil || len(st.Seen) != 2 {
		t.Fatalf("state after two updates: %+v, %v", st, err)
	}
	ents, err := os.ReadDir(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 1 {
		t.Errorf("state directory holds %d entries, want only the state file", len(ents))
	}
}

// TestSeenUnreadableIsRollback (issue 10, item 1): a seen snapshot that
// no longer loads is a rollback, named with why it does not load, until
// a forget record covers it; an unreadable one never seen is not.
func TestSeenUnreadableIsRollback(t *testing.T) {
	t.Parallel()
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
	unseen := NewRandomID()
	bad := []SnapshotError{{ID: s.ID, Err: errors.New("authentication failed")}, {ID: unseen, Err: errors.New("truncated")}}
	err := r.CheckSeen(ctx, state, nil, bad)
	if !errors.Is(err, ErrRolledBack) || !strings.Contains(err.Error(), s.ID.Short()+" (unreadable: authentication failed)") || strings.Contains(err.Error(), unseen.Short()) {
		t.Fatalf("seen unreadable snapshot: %v", err)
	}
	if err := r.ForgetSnapshots(ctx, "h", []ID{s.ID}); err != nil {
		t.Fatal(err)
	}
	if err := r.CheckSeen(ctx, state, nil, bad); err != nil {
		t.Fatalf("forgotten unreadable snapshot reported: %v", err)
	}
}
