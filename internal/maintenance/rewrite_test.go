package maintenance

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/coffer-backup/coffer/internal/archiver"
	"github.com/coffer-backup/coffer/internal/check"
	"github.com/coffer-backup/coffer/internal/crypto"
	"github.com/coffer-backup/coffer/internal/maintenance/repotest"
	"github.com/coffer-backup/coffer/internal/repository"
	"github.com/coffer-backup/coffer/internal/storage"
)

// objectTermsOf reads the term of every sealed object straight from the
// envelope headers in storage, by "kind/name".
func objectTermsOf(t *testing.T, st storage.Storage) map[string]uint32 {
	t.Helper()
	out := map[string]uint32{}
	for name, b := range dumpStorage(t, st) {
		kind, _, _ := strings.Cut(name, "/")
		if kind == string(storage.KindKeys) {
			continue // key slots are not envelopes
		}
		if len(b) < crypto.HeaderSize {
			t.Fatalf("%s: %d bytes", name, len(b))
		}
		out[name] = binary.BigEndian.Uint32(b[8:12])
	}
	return out
}

// saveOrphan stores a pack no index names, as a killed backup leaves.
func saveOrphan(t *testing.T, st storage.Storage) repository.ID {
	t.Helper()
	r := openRepo(t, st)
	pw, err := r.NewPackWriter()
	if err != nil {
		t.Fatal(err)
	}
	data := []byte("left behind by a killed backup")
	if err := pw.Add(repository.DataBlob, r.Hasher().Sum(data), data); err != nil {
		t.Fatal(err)
	}
	ip, _, err := r.SavePack(context.Background(), pw)
	if err != nil {
		t.Fatal(err)
	}
	return ip.ID
}

func snapshotIDs(t *testing.T, st storage.Storage) []repository.ID {
	t.Helper()
	snaps, bad, err := openRepo(t, st).LoadSnapshots(context.Background())
	if err != nil || len(bad) > 0 {
		t.Fatalf("load snapshots: %v %v", err, bad)
	}
	ids := make([]repository.ID, len(snaps))
	for i, s := range snaps {
		ids[i] = s.ID
	}
	return ids
}

type rotated struct {
	*twoSnaps
	child *repository.Snapshot // a backup whose parent is cur
	state string               // a client's state dir that saw every snapshot before the rewrite
}

// setupRotated builds a repository with every kind of term-sealed object
// on term 1 (packs, index files, snapshots, one with a parent, a forget
// record, a condemned record for an orphan pack younger than the safety
// margin), lets a client record the snapshots it saw, and rotates the key.
func setupRotated(t *testing.T) *rotated {
	t.Helper()
	ctx := context.Background()
	f := &rotated{twoSnaps: setupTwo(t), state: t.TempDir()}
	r := repotest.Open(t, f.st)
	child, err := archiver.New(r, archiver.Options{Parent: f.cur}).Snapshot(ctx, []string{f.src})
	if err != nil {
		t.Fatal(err)
	}
	child.Hostname = "testhost"
	if err := r.SaveSnapshot(ctx, child); err != nil {
		t.Fatal(err)
	}
	f.child = child
	forget(t, f.st, f.old)
	saveOrphan(t, f.st)
	if rep := prune(t, f.st, PruneOptions{}); rep.UnindexedPacks != 1 || rep.PendingRecords != 1 {
		t.Fatalf("orphan not condemned: %+v", rep)
	}
	if err := r.RecordSeen(f.state, snapshotIDs(t, f.st)); err != nil {
		t.Fatal(err)
	}
	if _, err := openRepo(t, f.st).RotateKey(ctx); err != nil {
		t.Fatal(err)
	}
	return f
}

func rewritePrune(t *testing.T, st storage.Storage, now func() time.Time, split int) *PruneReport {
	t.Helper()
	ctx := context.Background()
	r := openRepo(t, st)
	l, err := AcquireLock(ctx, r, true)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = l.Unlock(ctx) }()
	rep, err := Prune(ctx, r, PruneOptions{RewriteOldTerms: true, Lock: l, MaxUnused: MaxUnused{Unlimited: true}, Now: now, indexFileBlobs: split})
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

// assertRewritten checks the state after a complete rewrite: every object
// but config and keyring/* names the current term, the snapshots are the
// same backups under new IDs (the child's parent renamed along), check
// passes, the data restores, and a client that saw the old IDs sees no
// rollback, while a real rollback is still reported.
func assertRewritten(t *testing.T, f *rotated, co check.Options) {
	t.Helper()
	ctx := context.Background()
	r := repotest.Open(t, f.st)
	assertAllCurrentTerm(t, f.st, r)
	mustCheckOpts(t, f.st, co)
	cur, child := assertReplaced(t, f, r)
	repotest.AssertRestores(t, f.st, cur, f.wantCur)

	// The client saw the old IDs: no rollback.
	present := []repository.ID{cur.ID, child.ID}
	if err := r.CheckRollback(ctx, f.state, present); err != nil {
		t.Fatalf("rewrite reported as rollback: %v", err)
	}
	if err := r.RecordSeen(f.state, present); err != nil {
		t.Fatal(err)
	}
	// A snapshot made to vanish without a record still is one.
	if err := r.CheckRollback(ctx, f.state, []repository.ID{cur.ID}); !errors.Is(err, repository.ErrRolledBack) {
		t.Fatalf("a vanished replacement went unnoticed: %v", err)
	}
}

// assertAllCurrentTerm checks that every object but config and keyring/*
// names the current term, and those the KEK.
func assertAllCurrentTerm(t *testing.T, st storage.Storage, r *repository.Repository) {
	t.Helper()
	current := r.CurrentTerm()
	if current < 2 {
		t.Fatalf("current term %d", current)
	}
	for name, term := range objectTermsOf(t, st) {
		kind, _, _ := strings.Cut(name, "/")
		if kind == string(storage.KindConfig) || kind == string(storage.KindKeyring) {
			if term != 0 {
				t.Fatalf("%s sealed with term %d, want the KEK", name, term)
			}
			continue
		}
		if term != current {
			t.Fatalf("%s is still sealed with term %d (current %d)", name, term, current)
		}
	}
	left, err := OldTermObjects(context.Background(), r)
	if err != nil || len(left) != 0 {
		t.Fatalf("OldTermObjects: %v %v", left, err)
	}
}

// assertReplaced checks that the two snapshots are the same backups under
// new IDs, the child's parent renamed along, and returns them.
func assertReplaced(t *testing.T, f *rotated, r *repository.Repository) (cur, child *repository.Snapshot) {
	t.Helper()
	ctx := context.Background()
	snaps, _, err := r.LoadSnapshots(ctx)
	if err != nil || len(snaps) != 2 {
		t.Fatalf("%d snapshots (%v), want 2: none lost, none duplicated", len(snaps), err)
	}
	byTree := map[repository.ID]*repository.Snapshot{}
	for _, s := range snaps {
		byTree[s.Tree] = s
	}
	cur, child = byTree[f.cur.Tree], byTree[f.child.Tree]
	if cur == nil || child == nil || cur.ID == f.cur.ID || child.ID == f.child.ID {
		t.Fatalf("snapshots not replaced: %v", snaps)
	}
	if !cur.Time.Equal(f.cur.Time) || cur.Hostname != f.cur.Hostname || strings.Join(cur.Paths, ",") != strings.Join(f.cur.Paths, ",") {
		t.Fatalf("replacement differs: %+v vs %+v", cur, f.cur)
	}
	if child.Parent == nil || *child.Parent != cur.ID {
		t.Fatalf("child's parent %v, want the replacement %s", child.Parent, cur.ID.Short())
	}
	m, err := r.SnapshotReplacements(ctx)
	if err != nil || m[f.cur.ID] != cur.ID || m[f.child.ID] != child.ID {
		t.Fatalf("replacement records: %v %v", m, err)
	}
	return cur, child
}

func TestRewriteOldTerms(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := setupRotated(t)

	dry := openRepo(t, f.st)
	l, err := AcquireLock(ctx, dry, true)
	if err != nil {
		t.Fatal(err)
	}
	before := dumpStorage(t, f.st)
	rep, err := Prune(ctx, dry, PruneOptions{DryRun: true, RewriteOldTerms: true, Lock: l, MaxUnused: MaxUnused{Unlimited: true}, indexFileBlobs: 12})
	_ = l.Unlock(ctx)
	if err != nil || rep.RewrittenSnapshots != 2 || rep.OldTermPacks == 0 {
		t.Fatalf("dry run: %+v %v", rep, err)
	}
	delete(before, "locks/"+l.Info().ID.String())
	sameStorage(t, before, dumpStorage(t, f.st))

	rep = rewritePrune(t, f.st, nil, 12)
	t.Logf("%+v", rep)
	if rep.OldTermPacks == 0 || rep.DeletedPacks == 0 || rep.RewrittenSnapshots != 2 || len(rep.ReplacedSnapshots) != 2 || rep.RewrittenRecords == 0 {
		t.Fatalf("%+v", rep)
	}
	if rep.ReplacedSnapshots[f.cur.ID.String()] == "" || rep.ReplacedSnapshots[f.child.ID.String()] == "" {
		t.Fatalf("replacements not reported: %v", rep.ReplacedSnapshots)
	}
	// The orphan pack waits for the safety margin, so one pack is left on
	// the old term, and said so.
	if len(rep.OldTermObjects) != 1 || rep.OldTermObjects["data"] != 1 {
		t.Fatalf("left on old terms: %v", rep.OldTermObjects)
	}
	if n := assertIndexFiles(t, f.st, 12); n < 2 {
		t.Fatalf("%d index files with a split at 12 blobs", n)
	}
	// Past the margin the orphan goes, and nothing is left.
	rep = rewritePrune(t, f.st, func() time.Time { return time.Now().Add(DefaultSafetyMargin + time.Minute) }, 12)
	if rep.DeletedPacks != 1 || len(rep.OldTermObjects) != 0 || rep.RewrittenSnapshots != 0 {
		t.Fatalf("second run: %+v", rep)
	}
	assertRewritten(t, f, check.Options{ReadData: true})

	// A shared lock is refused.
	r := openRepo(t, f.st)
	l, _ = AcquireLock(ctx, r, false)
	defer func() { _ = l.Unlock(ctx) }()
	if _, err := Prune(ctx, r, PruneOptions{RewriteOldTerms: true, Lock: l}); err == nil {
		t.Fatal("rewrite-old-terms ran under a shared lock")
	}
}

// TestRewriteOldTermsCrashAtEveryStep stops the rewrite after each of its
// writes and removals. Every intermediate state must check clean, restore,
// and look like no rollback to a client that saw the old snapshot IDs; a
// rerun must finish the job without duplicating or losing a snapshot. An
// uninterrupted rewrite counts the steps; they run as parallel subtests,
// each on its own copy of the repository.
func TestRewriteOldTermsCrashAtEveryStep(t *testing.T) {
	if testing.Short() {
		t.Skip("slow")
	}
	t.Parallel()
	base := setupRotated(t)
	later := func() time.Time { return time.Now().Add(DefaultSafetyMargin + time.Minute) }
	opts := PruneOptions{RewriteOldTerms: true, MaxUnused: MaxUnused{Unlimited: true}, Now: later, indexFileBlobs: 12}
	counter := &crashAfter{Storage: cloneMem(t, base.st), n: math.MaxInt}
	if _, err := Prune(context.Background(), openRepo(t, counter), opts); err != nil {
		t.Fatal(err)
	}
	steps := counter.done
	t.Logf("the rewrite needs %d mutations; crashing after each of 0..%d", steps, steps-1)
	if steps < 10 {
		t.Fatalf("only %d mutations: the sweep tests little", steps)
	}
	for n := 0; n < steps; n++ {
		t.Run(fmt.Sprintf("crash-after-%d", n), func(t *testing.T) {
			t.Parallel()
			st := cloneMem(t, base.st)
			faulty := &crashAfter{Storage: st, n: n}
			_, err := Prune(context.Background(), openRepo(t, faulty), opts)
			faulty.checkEnd(t, err)
			mustCheckOpts(t, st, check.Options{})
			repotest.AssertRestores(t, st, base.cur, base.wantCur)
			// Each round has its own client state, seeded with the old IDs.
			f := *base
			f.twoSnaps = &twoSnaps{st: st, old: base.old, cur: base.cur, src: base.src, wantCur: base.wantCur}
			f.state = t.TempDir()
			r := openRepo(t, st)
			if err := r.RecordSeen(f.state, []repository.ID{base.cur.ID, base.child.ID}); err != nil {
				t.Fatal(err)
			}
			if err := r.CheckRollback(context.Background(), f.state, snapshotIDs(t, st)); err != nil {
				t.Fatalf("crash after %d: %v", n, err)
			}
			// Packs the stopped run had already taken out of the index wait for
			// the safety margin like any unindexed pack; let it pass.
			rewritePrune(t, st, func() time.Time { return later().Add(DefaultSafetyMargin + time.Minute) }, 12)
			assertRewritten(t, &f, check.Options{})
		})
	}
}
