package repository

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/coffer-backup/coffer/internal/crypto"
	"github.com/coffer-backup/coffer/internal/storage"
)

func addTag(tag string) func(*Snapshot) bool {
	return func(s *Snapshot) bool {
		if slices.Contains(s.Tags, tag) {
			return false
		}
		s.Tags = append(s.Tags, tag)
		return true
	}
}

// editFixture saves two snapshots, the second the child of the first, and
// records both as seen.
func editFixture(t *testing.T) (*Repository, string, *Snapshot, *Snapshot) {
	t.Helper()
	ctx := context.Background()
	r := testRepo(t)
	a := &Snapshot{Time: time.Unix(100, 0).UTC(), Tree: NewRandomID(), Paths: []string{"/x"}, Hostname: "h", Tags: []string{"old"}}
	if err := r.SaveSnapshot(ctx, a); err != nil {
		t.Fatal(err)
	}
	b := &Snapshot{Time: time.Unix(200, 0).UTC(), Tree: NewRandomID(), Paths: []string{"/x"}, Hostname: "h", Parent: &a.ID}
	if err := r.SaveSnapshot(ctx, b); err != nil {
		t.Fatal(err)
	}
	state := t.TempDir()
	if err := r.RecordSeen(state, []ID{a.ID, b.ID}); err != nil {
		t.Fatal(err)
	}
	return r, state, a, b
}

func presentIDs(t *testing.T, r *Repository) []ID {
	t.Helper()
	snaps, bad, err := r.LoadSnapshots(context.Background())
	if err != nil || len(bad) > 0 {
		t.Fatal(err, bad)
	}
	ids := make([]ID, len(snaps))
	for i, s := range snaps {
		ids[i] = s.ID
	}
	return ids
}

func TestEditSnapshots(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r, state, a, b := editFixture(t)
	m, err := r.EditSnapshots(ctx, "h", []ID{a.ID, b.ID, a.ID}, addTag("new"))
	if err != nil {
		t.Fatal(err)
	}
	if len(m) != 2 || m[a.ID] == a.ID || m[b.ID] == b.ID {
		t.Fatalf("replacements %v", m)
	}
	na, err := r.LoadSnapshot(ctx, m[a.ID])
	if err != nil || !slices.Equal(na.Tags, []string{"old", "new"}) || na.Tree != a.Tree || !na.Time.Equal(a.Time) {
		t.Fatalf("edited a: %+v %v", na, err)
	}
	nb, err := r.LoadSnapshot(ctx, m[b.ID])
	if err != nil || nb.Parent == nil || *nb.Parent != m[a.ID] {
		t.Fatalf("edited b's parent: %+v %v", nb, err)
	}
	present := presentIDs(t, r)
	if len(present) != 2 {
		t.Fatalf("present %v", present)
	}
	// The client saw a and b; their replacement explains their absence.
	if err := r.CheckRollback(ctx, state, present); err != nil {
		t.Fatalf("rollback check after the edit: %v", err)
	}
	// Nothing to change writes nothing.
	before, _ := r.ListIDs(ctx, storage.KindForgets)
	m2, err := r.EditSnapshots(ctx, "h", present, addTag("new"))
	after, _ := r.ListIDs(ctx, storage.KindForgets)
	if err != nil || len(m2) != 0 || len(after) != len(before) {
		t.Fatalf("no-op edit: %v %v, records %d -> %d", m2, err, len(before), len(after))
	}
}

// A run that stopped right after its replacement record: the next edit
// finishes the recorded replacement and applies its own change on top.
func TestEditSnapshotsAfterStoppedRun(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r, state, a, _ := editFixture(t)
	recorded := NewRandomID()
	rec := ReplacementRecord{ForgetRecord: ForgetRecord{Time: time.Now().UTC(), Host: "h", Snapshots: []ID{a.ID}}, ReplacedBy: map[ID]ID{a.ID: recorded}}
	if _, err := r.SaveSealed(ctx, storage.KindForgets, crypto.KindForget, rec); err != nil {
		t.Fatal(err)
	}
	m, err := r.EditSnapshots(ctx, "h", []ID{a.ID}, addTag("again"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := r.LoadSnapshot(ctx, m[a.ID])
	if err != nil || !slices.Equal(got.Tags, []string{"old", "again"}) {
		t.Fatalf("final snapshot %+v %v", got, err)
	}
	if _, err := r.LoadSnapshot(ctx, a.ID); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("old snapshot still there: %v", err)
	}
	if err := r.CheckRollback(ctx, state, presentIDs(t, r)); err != nil {
		t.Fatalf("rollback check: %v", err)
	}
	// Removing the edited snapshot behind the client's back is still caught.
	if err := r.st.Remove(ctx, storage.Handle{Kind: storage.KindSnapshots, Name: m[a.ID].String()}); err != nil {
		t.Fatal(err)
	}
	if err := r.CheckRollback(ctx, state, presentIDs(t, r)); !errors.Is(err, ErrRolledBack) {
		t.Fatalf("hidden replacement not detected: %v", err)
	}
}

func TestTagChange(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		have    []string
		c       TagChange
		want    []string
		changed bool
	}{
		{[]string{"a"}, TagChange{Add: []string{"b", "a", "b"}}, []string{"a", "b"}, true},
		{[]string{"a", "b"}, TagChange{Remove: []string{"a", "x"}}, []string{"b"}, true},
		{[]string{"a"}, TagChange{Add: []string{"a"}}, []string{"a"}, false},
		{[]string{"a", "b"}, TagChange{Set: []string{"c", ""}}, []string{"c"}, true},
		{[]string{"a"}, TagChange{Set: []string{}}, nil, true},
		{nil, TagChange{Set: []string{}}, nil, false},
		{[]string{"a"}, TagChange{Remove: []string{"a"}}, nil, true},
		{[]string{"a"}, TagChange{Add: []string{"b"}, Remove: []string{"b"}}, []string{"a"}, false},
	} {
		s := &Snapshot{Tags: slices.Clone(tc.have)}
		if got := tc.c.Apply(s); got != tc.changed || !slices.Equal(s.Tags, tc.want) {
			t.Errorf("%v %+v: got %v %v, want %v %v", tc.have, tc.c, s.Tags, got, tc.want, tc.changed)
		}
	}
}
