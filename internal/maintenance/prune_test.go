package maintenance

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/coffer-backup/coffer/internal/archiver"
	"github.com/coffer-backup/coffer/internal/check"
	"github.com/coffer-backup/coffer/internal/maintenance/repotest"
	"github.com/coffer-backup/coffer/internal/repository"
	"github.com/coffer-backup/coffer/internal/storage"
	"github.com/coffer-backup/coffer/internal/storage/mem"
)

func openRepo(t *testing.T, st storage.Storage) *repository.Repository {
	t.Helper()
	r, err := repository.Open(context.Background(), st, repotest.Secret(t, st))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func prune(t *testing.T, st storage.Storage, o PruneOptions) *PruneReport {
	t.Helper()
	rep, err := Prune(context.Background(), openRepo(t, st), o)
	if err != nil {
		t.Fatalf("prune: %v", err)
	}
	return rep
}

func mustCheck(t *testing.T, st storage.Storage) *check.Result {
	t.Helper()
	return mustCheckOpts(t, st, check.Options{ReadData: true})
}

// mustCheckOpts is mustCheck with options: the crash sweeps check the
// structure of each intermediate state and leave reading every pack to
// their restores, which read the data they need.
func mustCheckOpts(t *testing.T, st storage.Storage, o check.Options) *check.Result {
	t.Helper()
	res, err := check.Check(context.Background(), openRepo(t, st), o)
	if err != nil {
		t.Fatal(err)
	}
	if res.Damaged() {
		t.Fatalf("check after prune: %v\n%+v", res.Err(), res)
	}
	return res
}

func forget(t *testing.T, st storage.Storage, snaps ...*repository.Snapshot) {
	t.Helper()
	var ids []repository.ID
	for _, s := range snaps {
		ids = append(ids, s.ID)
	}
	if err := openRepo(t, st).ForgetSnapshots(context.Background(), "testhost", ids); err != nil {
		t.Fatal(err)
	}
}

func storedBytes(t *testing.T, st storage.Storage) int64 {
	t.Helper()
	var n int64
	err := st.List(context.Background(), storage.KindData, func(fi storage.FileInfo) error { n += fi.Size; return nil })
	if err != nil {
		t.Fatal(err)
	}
	return n
}

type twoSnaps struct {
	st       *mem.Mem
	old, cur *repository.Snapshot
	src      string
	wantCur  map[string][]byte
}

// setupTwo backs up a tree, replaces half of its files, and backs it up again.
func setupTwo(t *testing.T) *twoSnaps {
	t.Helper()
	st := mem.New()
	repotest.Init(t, st)
	rng := rand.New(rand.NewPCG(11, 12))
	src := t.TempDir()
	repotest.RandomTree(t, src, 16, 400<<10, rng)
	old := repotest.Backup(t, st, []string{src})
	files := repotest.Files(t, src)
	i := 0
	for p := range files {
		if i%2 == 0 {
			if err := os.Remove(filepath.Join(src, p)); err != nil {
				t.Fatal(err)
			}
		}
		i++
	}
	repotest.RandomTree(t, filepath.Join(src, "new"), 6, 300<<10, rng)
	cur := repotest.Backup(t, st, []string{src})
	return &twoSnaps{st: st, old: old, cur: cur, src: src, wantCur: repotest.Files(t, src)}
}

func TestPruneReclaimsAndKeepsSnapshotsIntact(t *testing.T) {
	t.Parallel()
	f := setupTwo(t)
	before := storedBytes(t, f.st)
	forget(t, f.st, f.old)
	rep := prune(t, f.st, PruneOptions{MaxUnused: DefaultMaxUnused})
	t.Logf("%+v", rep)
	if rep.DeletedPacks == 0 || rep.CondemnedPacks == 0 {
		t.Fatalf("nothing deleted: %+v", rep)
	}
	if after := storedBytes(t, f.st); after >= before {
		t.Fatalf("stored bytes %d -> %d", before, after)
	}
	if n := repotest.Count(t, f.st, storage.KindCondemned); n != 0 {
		t.Fatalf("%d condemned records left although no other lock exists", n)
	}
	if n := repotest.Count(t, f.st, storage.KindIndex); n != 1 {
		t.Fatalf("%d index files after prune, want 1", n)
	}
	res := mustCheck(t, f.st)
	if len(res.UnindexedPacks) != 0 {
		t.Fatalf("unindexed packs left: %v", res.UnindexedPacks)
	}
	repotest.AssertRestores(t, f.st, f.cur, f.wantCur)

	// A second prune finds nothing to do.
	rep2 := prune(t, f.st, PruneOptions{MaxUnused: DefaultMaxUnused})
	if rep2.CondemnedPacks != 0 || rep2.DeletedPacks != 0 || rep2.NewPacks != 0 || rep2.IndexWritten != 0 {
		t.Fatalf("second prune did something: %+v", rep2)
	}
}

func TestPruneRepacksToZeroUnused(t *testing.T) {
	t.Parallel()
	f := setupTwo(t)
	forget(t, f.st, f.old)
	rep := prune(t, f.st, PruneOptions{MaxUnused: MaxUnused{Percent: 0}})
	t.Logf("%+v", rep)
	if rep.RepackedPacks == 0 || rep.NewPacks == 0 {
		t.Fatalf("no repacking with --max-unused 0%%: %+v", rep)
	}
	mustCheck(t, f.st)
	repotest.AssertRestores(t, f.st, f.cur, f.wantCur)
	// Every indexed blob is now used.
	dry := prune(t, f.st, PruneOptions{DryRun: true, MaxUnused: MaxUnused{Percent: 0}})
	if dry.CondemnedPacks != 0 || dry.RepackedPacks != 0 {
		t.Fatalf("unused data left after repacking: %+v", dry)
	}
}

func dumpStorage(t *testing.T, st storage.Storage) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	for _, k := range storage.Kinds {
		err := st.List(context.Background(), k, func(fi storage.FileInfo) error {
			h := storage.Handle{Kind: k, Name: fi.Name}
			b, err := st.Load(context.Background(), h, 0, -1)
			out[h.String()] = b
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return out
}

func sameStorage(t *testing.T, a, b map[string][]byte) {
	t.Helper()
	if len(a) != len(b) {
		t.Fatalf("object count changed: %d -> %d", len(a), len(b))
	}
	for k, v := range a {
		if !bytes.Equal(v, b[k]) {
			t.Fatalf("%s changed", k)
		}
	}
}

func TestPruneDryRunWritesNothing(t *testing.T) {
	t.Parallel()
	f := setupTwo(t)
	forget(t, f.st, f.old)
	before := dumpStorage(t, f.st)
	rep := prune(t, f.st, PruneOptions{DryRun: true, MaxUnused: MaxUnused{Percent: 0}})
	if rep.CondemnedPacks == 0 || rep.RepackedPacks == 0 {
		t.Fatalf("dry run found nothing: %+v", rep)
	}
	sameStorage(t, before, dumpStorage(t, f.st))
}

// failingList makes List fail for one kind: prune must stop, never read the
// failure as "nothing there" (restic #4612).
type failingList struct {
	storage.Storage
	kind storage.Kind
}

var errListing = errors.New("listing failed")

func (f failingList) List(ctx context.Context, k storage.Kind, fn func(storage.FileInfo) error) error {
	if k == f.kind {
		return errListing
	}
	return f.Storage.List(ctx, k, fn)
}

func TestPruneAbortsOnListingAndTreeErrors(t *testing.T) {
	t.Parallel()
	f := setupTwo(t)
	forget(t, f.st, f.old)
	before := dumpStorage(t, f.st)
	for _, k := range []storage.Kind{storage.KindSnapshots, storage.KindIndex, storage.KindData, storage.KindLocks, storage.KindCondemned} {
		_, err := Prune(context.Background(), openRepo(t, failingList{f.st, k}), PruneOptions{})
		if !errors.Is(err, errListing) {
			t.Fatalf("listing %s fails: prune returned %v", k, err)
		}
		sameStorage(t, before, dumpStorage(t, f.st))
	}
	// Make a tree of the live snapshot unreadable: drop its pack from storage.
	r := repotest.Open(t, f.st)
	locs := r.Index().Lookup(repository.BlobHandle{Type: repository.TreeBlob, ID: f.cur.Tree})
	h := storage.Handle{Kind: storage.KindData, Name: locs[0].Pack.String()}
	data, _ := f.st.Load(context.Background(), h, 0, -1)
	bad := bytes.Clone(data)
	bad[locs[0].Offset+20] ^= 1
	if err := f.st.Remove(context.Background(), h); err != nil {
		t.Fatal(err)
	}
	if err := f.st.Save(context.Background(), h, bad); err != nil {
		t.Fatal(err)
	}
	before = dumpStorage(t, f.st)
	_, err := Prune(context.Background(), openRepo(t, f.st), PruneOptions{})
	if !errors.Is(err, ErrUnsafe) {
		t.Fatalf("unreadable tree: prune returned %v", err)
	}
	sameStorage(t, before, dumpStorage(t, f.st))
}

func TestPruneAbortsOnUnreadableSnapshot(t *testing.T) {
	t.Parallel()
	f := setupTwo(t)
	h := storage.Handle{Kind: storage.KindSnapshots, Name: f.old.ID.String()}
	data, _ := f.st.Load(context.Background(), h, 0, -1)
	_ = f.st.Remove(context.Background(), h)
	_ = f.st.Save(context.Background(), h, data[:len(data)-1])
	before := dumpStorage(t, f.st)
	if _, err := Prune(context.Background(), openRepo(t, f.st), PruneOptions{}); !errors.Is(err, ErrUnsafe) {
		t.Fatalf("prune with an unreadable snapshot: %v", err)
	}
	sameStorage(t, before, dumpStorage(t, f.st))
}

// TestPruneWithConcurrentBackup: a backup that loaded the index before
// prune condemned packs deduplicates against a blob in one of them. Prune
// must only condemn while that backup's lock exists, and a later prune must
// rescue the pack, so the backup's snapshot stays complete.
func TestPruneWithConcurrentBackup(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := mem.New()
	repotest.Init(t, st)
	rng := rand.New(rand.NewPCG(21, 22))
	srcA := t.TempDir()
	content := repotest.WriteFile(t, filepath.Join(srcA, "shared"), 900<<10, rng)
	s1 := repotest.Backup(t, st, []string{srcA})
	forget(t, st, s1)

	// The backup starts: lock, then index (as backup does).
	rb := openRepo(t, st)
	lock, err := rb.Lock(ctx, "backup", false)
	if err != nil {
		t.Fatal(err)
	}
	if err := rb.LoadIndex(ctx); err != nil {
		t.Fatal(err)
	}
	packsBefore := repotest.Count(t, st, storage.KindData)

	rep := prune(t, st, PruneOptions{MaxUnused: DefaultMaxUnused})
	if rep.CondemnedPacks == 0 || rep.DeletedPacks != 0 || len(rep.BlockedByLocks) == 0 {
		t.Fatalf("prune beside a running backup: %+v", rep)
	}
	if n := repotest.Count(t, st, storage.KindData); n != packsBefore {
		t.Fatalf("packs deleted while a backup older than the record runs: %d -> %d", packsBefore, n)
	}
	if repotest.Count(t, st, storage.KindCondemned) != 1 {
		t.Fatal("no condemned record")
	}
	// A backup starting now must not deduplicate against condemned packs.
	fresh := repotest.Open(t, st)
	blobs := 0
	fresh.Index().Each(func(l repository.BlobLocation, id repository.ID) bool {
		if l.Type == repository.DataBlob {
			blobs++
			if fresh.Index().Has(repository.BlobHandle{Type: l.Type, ID: id}) {
				t.Errorf("blob %s of a condemned pack is usable for dedup", id.Short())
			}
		}
		return true
	})
	if blobs == 0 {
		t.Fatal("condemned packs dropped from the index too early")
	}

	// The old backup goes on, deduplicating against the condemned blobs.
	srcB := t.TempDir()
	if err := os.WriteFile(filepath.Join(srcB, "copy"), content, 0o644); err != nil {
		t.Fatal(err)
	}
	s2, err := archiver.New(rb, archiver.Options{}).Snapshot(ctx, []string{srcB})
	if err != nil {
		t.Fatal(err)
	}
	if s2.Summary.DataBlobs != 0 {
		t.Fatalf("the backup stored %d data blobs; it should have deduplicated all", s2.Summary.DataBlobs)
	}
	s2.Hostname = "testhost"
	if err := rb.SaveSnapshot(ctx, s2); err != nil {
		t.Fatal(err)
	}
	// While the backup still holds its lock, prune again: still nothing deleted.
	rep = prune(t, st, PruneOptions{MaxUnused: DefaultMaxUnused})
	if rep.DeletedPacks != 0 {
		t.Fatalf("deleted while the lock exists: %+v", rep)
	}
	if err := lock.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
	mustCheck(t, st)
	repotest.AssertRestores(t, st, s2, map[string][]byte{"copy": content})

	// Now the record is ready: the pack is used again and is rescued.
	rep = prune(t, st, PruneOptions{MaxUnused: DefaultMaxUnused})
	t.Logf("%+v", rep)
	if rep.RescuedPacks == 0 {
		t.Fatalf("pack not rescued: %+v", rep)
	}
	if repotest.Count(t, st, storage.KindCondemned) != 0 {
		t.Fatal("rescued pack still condemned")
	}
	mustCheck(t, st)
	repotest.AssertRestores(t, st, s2, map[string][]byte{"copy": content})
	if h := repotest.Open(t, st); h.Index().Count() == 0 {
		t.Fatal("empty index")
	}
}

// TestPruneDeletesAfterBlockingLockEnds: the common case of a backup that
// did not use the condemned data.
func TestPruneDeletesAfterBlockingLockEnds(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := setupTwo(t)
	forget(t, f.st, f.old)
	other := openRepo(t, f.st)
	lock, err := other.Lock(ctx, "check", false)
	if err != nil {
		t.Fatal(err)
	}
	rep := prune(t, f.st, PruneOptions{})
	if rep.DeletedPacks != 0 || rep.CondemnedPacks == 0 {
		t.Fatalf("%+v", rep)
	}
	mustCheck(t, f.st)
	if err := lock.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
	rep = prune(t, f.st, PruneOptions{})
	if rep.DeletedPacks == 0 || rep.PendingRecords != 0 {
		t.Fatalf("%+v", rep)
	}
	mustCheck(t, f.st)
	repotest.AssertRestores(t, f.st, f.cur, f.wantCur)
}

// TestLockStartedAfterRecord: a lock started after the record (plus the
// clock-skew margin) belongs to a process that saw the record, so it does
// not block deletion; within the margin it does.
func TestLockStartedAfterRecord(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := setupTwo(t)
	forget(t, f.st, f.old)
	l1, err := openRepo(t, f.st).Lock(ctx, "check", false)
	if err != nil {
		t.Fatal(err)
	}
	if rep := prune(t, f.st, PruneOptions{}); rep.DeletedPacks != 0 || rep.CondemnedPacks == 0 {
		t.Fatalf("with an older lock: %+v", rep)
	}
	_ = l1.Unlock(ctx)
	time.Sleep(10 * time.Millisecond)
	l2, err := openRepo(t, f.st).Lock(ctx, "backup", false)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = l2.Unlock(ctx) }()
	if rep := prune(t, f.st, PruneOptions{}); rep.DeletedPacks != 0 {
		t.Fatalf("a lock within the clock-skew margin did not block: %+v", rep)
	}
	rep := prune(t, f.st, PruneOptions{ClockSkew: -1})
	if rep.DeletedPacks == 0 {
		t.Fatalf("a lock younger than the record blocked deletion: %+v", rep)
	}
	mustCheck(t, f.st)
	repotest.AssertRestores(t, f.st, f.cur, f.wantCur)
}

func TestUnindexedPacks(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := setupTwo(t)
	r := openRepo(t, f.st)
	pw, err := r.NewPackWriter()
	if err != nil {
		t.Fatal(err)
	}
	data := []byte("left behind by a killed backup")
	if err := pw.Add(repository.DataBlob, r.Hasher().Sum(data), data); err != nil {
		t.Fatal(err)
	}
	orphan, _, err := r.SavePack(ctx, pw)
	if err != nil {
		t.Fatal(err)
	}
	exists := func() bool {
		_, err := f.st.Stat(ctx, storage.Handle{Kind: storage.KindData, Name: orphan.ID.String()})
		return err == nil
	}
	// Another process holds a lock: the orphan is left alone entirely.
	lock, err := openRepo(t, f.st).Lock(ctx, "backup", false)
	if err != nil {
		t.Fatal(err)
	}
	rep := prune(t, f.st, PruneOptions{})
	if rep.UnindexedKept != 1 || rep.CondemnedPacks != 0 || !exists() {
		t.Fatalf("with another lock: %+v", rep)
	}
	_ = lock.Unlock(ctx)
	// No other lock: condemned, but younger than the safety margin.
	rep = prune(t, f.st, PruneOptions{})
	if rep.UnindexedPacks != 1 || rep.CondemnedPacks != 1 || !exists() {
		t.Fatalf("first prune: %+v", rep)
	}
	// An hour later it goes.
	rep = prune(t, f.st, PruneOptions{Now: func() time.Time { return time.Now().Add(DefaultSafetyMargin + time.Minute) }})
	if exists() || rep.DeletedPacks != 1 {
		t.Fatalf("orphan still there after the margin: %+v", rep)
	}
	mustCheck(t, f.st)
}

func TestTwoPrunesRefuse(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := mem.New()
	repotest.Init(t, st)
	l1, err := AcquireLock(ctx, openRepo(t, st), false)
	if err != nil {
		t.Fatal(err)
	}
	_, err = AcquireLock(ctx, openRepo(t, st), false)
	if !errors.Is(err, ErrPruneRunning) || !errors.Is(err, repository.ErrLocked) {
		t.Fatalf("second prune: %v", err)
	}
	if n := repotest.Count(t, st, storage.KindLocks); n != 1 {
		t.Fatalf("%d locks left, want 1", n)
	}
	_ = l1.Unlock(ctx)
	l2, err := AcquireLock(ctx, openRepo(t, st), false)
	if err != nil {
		t.Fatalf("prune after the first finished: %v", err)
	}
	_ = l2.Unlock(ctx)
}

func TestPruneOwnLockDoesNotBlock(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := setupTwo(t)
	forget(t, f.st, f.old)
	r := openRepo(t, f.st)
	l, err := AcquireLock(ctx, r, false)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = l.Unlock(ctx) }()
	rep, err := Prune(ctx, r, PruneOptions{Lock: l})
	if err != nil {
		t.Fatal(err)
	}
	if rep.DeletedPacks == 0 {
		t.Fatalf("prune's own lock blocked it: %+v", rep)
	}
}

func TestParseMaxUnused(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		in    string
		limit int64 // for 900 used bytes
		ok    bool
	}{
		{"10%", 100, true},
		{"0%", 0, true},
		{"50%", 900, true},
		{"100%", 1<<63 - 1, true},
		{"unlimited", 1<<63 - 1, true},
		{"0", 0, true},
		{"1k", 1024, true},
		{"2M", 2 << 20, true},
		{"1G", 1 << 30, true},
		{"10GiB", 10 << 30, true},
		{"500MB", 500e6, true},
		{"1.5K", 1536, true},
		{"", 0, false},
		{"-1%", 0, false},
		{"x", 0, false},
		{"10q", 0, false},
		{"99999999999T", 0, false},
	} {
		m, err := ParseMaxUnused(c.in)
		if (err == nil) != c.ok {
			t.Errorf("ParseMaxUnused(%q): %v", c.in, err)
			continue
		}
		if err == nil {
			if got := m.Limit(900); got < c.limit-1 || got > c.limit {
				t.Errorf("ParseMaxUnused(%q).Limit(900) = %d, want %d", c.in, got, c.limit)
			}
		}
	}
}

// crashAfter lets the first n mutations through and fails every later one,
// as if the process had died at that point.
type crashAfter struct {
	storage.Storage
	n, done int
	refused int // writes and removals refused after the crash point
}

var errCrash = errors.New("simulated crash")

// checkEnd fails t unless a run on c that returned err stopped at the
// crash point n, or finished without reaching it, as a run may that needs
// fewer mutations than the run that counted them (how many new packs and
// index files a repack writes follows the order of random pack IDs); the
// latter is logged. A refused write that the run then ignored fails t.
func (c *crashAfter) checkEnd(t *testing.T, err error) {
	t.Helper()
	switch {
	case errors.Is(err, errCrash):
	case err == nil && c.refused == 0 && c.done <= c.n:
		t.Logf("finished in %d mutations, before the crash point %d", c.done, c.n)
	default:
		t.Fatalf("crash after %d: unexpected error %v (%d writes refused after the crash point)", c.n, err, c.refused)
	}
}

func (c *crashAfter) Save(ctx context.Context, h storage.Handle, data []byte) error {
	if c.done >= c.n {
		c.refused++
		return errCrash
	}
	c.done++
	return c.Storage.Save(ctx, h, data)
}

func (c *crashAfter) Remove(ctx context.Context, h storage.Handle) error {
	if c.done >= c.n {
		c.refused++
		return errCrash
	}
	c.done++
	return c.Storage.Remove(ctx, h)
}

// cloneMem returns a copy of st that later writes to either leave the
// other alone (sharing the stored bytes, which nothing modifies).
func cloneMem(t *testing.T, st *mem.Mem) *mem.Mem {
	t.Helper()
	return st.Clone()
}

// TestPruneCrashAtEveryStep stops prune after each of its writes and
// removals in turn, once on a fresh repository and once where an earlier
// prune left a condemned record. Every intermediate state must check clean
// and restore, and an uninterrupted prune afterwards must clean up. The
// sweeps and their steps run in parallel, each on its own copy.
func TestPruneCrashAtEveryStep(t *testing.T) {
	t.Parallel()
	f := setupTwo(t)
	forget(t, f.st, f.old)
	opts := PruneOptions{MaxUnused: MaxUnused{Percent: 0}, SafetyMargin: -1}
	t.Run("fresh", func(t *testing.T) {
		t.Parallel()
		crashSweep(t, f, f.st, opts, check.Options{ReadData: true})
	})
	// With index files of at most 12 blobs, every index prune writes is a
	// set of several files; a crash may come between any two of them.
	t.Run("split-index", func(t *testing.T) {
		t.Parallel()
		split := opts
		split.indexFileBlobs = 12
		crashSweep(t, f, f.st, split, check.Options{})
	})

	blocked := cloneMem(t, f.st)
	ctx := context.Background()
	l, err := openRepo(t, blocked).Lock(ctx, "backup", false)
	if err != nil {
		t.Fatal(err)
	}
	if rep := prune(t, blocked, opts); rep.DeferredPacks == 0 {
		t.Fatalf("no record left: %+v", rep)
	}
	_ = l.Unlock(ctx)
	t.Run("pending-record", func(t *testing.T) {
		t.Parallel()
		crashSweep(t, f, blocked, opts, check.Options{ReadData: true})
	})
}

// assertIndexFiles checks the index files a finished prune leaves: none is
// superseded by another (those were removed), each holds at most
// split blobs (repository.DefaultIndexFileBlobs when zero) unless it lists
// a single pack, and together they are exactly as many as splitting their
// packs gives. It returns how many there are.
func assertIndexFiles(t *testing.T, st storage.Storage, split int) int {
	if split == 0 {
		split = repository.DefaultIndexFileBlobs
	}
	t.Helper()
	ctx := context.Background()
	r := openRepo(t, st)
	ids, err := r.ListIDs(ctx, storage.KindIndex)
	if err != nil {
		t.Fatal(err)
	}
	present := map[repository.ID]bool{}
	for _, id := range ids {
		present[id] = true
	}
	var all []repository.IndexPack
	for _, id := range ids {
		f, err := r.LoadIndexFile(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range f.Supersedes {
			if present[s] {
				t.Fatalf("index %s supersedes %s, which is still stored", id.Short(), s.Short())
			}
		}
		n := 0
		for _, p := range f.Packs {
			n += len(p.Blobs)
		}
		if n > split && len(f.Packs) > 1 {
			t.Fatalf("index %s holds %d blobs in %d packs; the limit is %d", id.Short(), n, len(f.Packs), split)
		}
		all = append(all, f.Packs...)
	}
	// No leftovers: every pack is listed once. And no waste: prune splits
	// greedily in its own pack order (next fit), which never needs more than
	// twice the minimum number of files; recomputing the split here in
	// listing order could legitimately give a different count.
	seen := map[repository.ID]bool{}
	total := 0
	for _, p := range all {
		if seen[p.ID] {
			t.Fatalf("pack %s is listed in two index files", p.ID.Short())
		}
		seen[p.ID] = true
		total += len(p.Blobs)
	}
	if minFiles := (total + split - 1) / split; len(ids) > max(1, 2*minFiles) {
		t.Fatalf("%d index files for %d blobs at %d per file", len(ids), total, split)
	}
	return len(ids)
}

// crashSweep counts the mutations an uninterrupted prune of base makes,
// then, for each n below that, stops a prune of a copy of base after n of
// them (a parallel subtest each): the state left must check clean (with
// co) and restore, and two uninterrupted prunes must clean it up.
//
// With co.ReadData, every fourth step and the last read every pack whole;
// the other steps check the structure only (which is half the cost under
// -race). Their restores still read every blob of the live snapshot, and
// every step still crashes, checks, restores and cleans up.
func crashSweep(t *testing.T, f *twoSnaps, base *mem.Mem, opts PruneOptions, co check.Options) {
	counter := &crashAfter{Storage: cloneMem(t, base), n: math.MaxInt}
	if _, err := Prune(context.Background(), openRepo(t, counter), opts); err != nil {
		t.Fatal(err)
	}
	steps := counter.done
	t.Logf("prune needs %d mutations; crashing after each of 0..%d", steps, steps-1)
	if steps < 5 {
		t.Fatalf("only %d mutations: the sweep tests little", steps)
	}
	for n := 0; n < steps; n++ {
		co := co
		co.ReadData = co.ReadData && (n%4 == 0 || n == steps-1)
		t.Run(fmt.Sprintf("crash-after-%d", n), func(t *testing.T) {
			t.Parallel()
			crashStep(t, f, base, opts, co, n)
		})
	}
}

// crashStep is one step of crashSweep: prune stopped after n mutations.
func crashStep(t *testing.T, f *twoSnaps, base *mem.Mem, opts PruneOptions, co check.Options, n int) {
	st := cloneMem(t, base)
	faulty := &crashAfter{Storage: st, n: n}
	_, err := Prune(context.Background(), openRepo(t, faulty), opts)
	faulty.checkEnd(t, err)
	mustCheckOpts(t, st, co)
	repotest.AssertRestores(t, st, f.cur, f.wantCur)
	for i := 0; i < 2; i++ {
		prune(t, st, opts)
	}
	res := mustCheckOpts(t, st, co)
	if len(res.UnindexedPacks) != 0 || repotest.Count(t, st, storage.KindCondemned) != 0 {
		t.Fatalf("crash after %d: not cleaned up: %d unindexed, %d records", n,
			len(res.UnindexedPacks), repotest.Count(t, st, storage.KindCondemned))
	}
	files := assertIndexFiles(t, st, opts.indexFileBlobs)
	if split := opts.indexFileBlobs != 0; (files > 1) != split {
		t.Fatalf("crash after %d: %d index files (split limit %d)", n, files, opts.indexFileBlobs)
	}
	repotest.AssertRestores(t, st, f.cur, f.wantCur)
}

func FuzzParseMaxUnused(f *testing.F) {
	for _, s := range []string{"10%", "unlimited", "0", "5M", "1e3%", "-1", "9223372036854775807", "8E", "%"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m, err := ParseMaxUnused(s)
		if err != nil {
			return
		}
		for _, used := range []int64{0, 1, 1 << 40} {
			if l := m.Limit(used); l < 0 {
				t.Fatalf("%q: negative limit %d for %d used", s, l, used)
			}
		}
		if _, err := ParseMaxUnused(m.String()); err != nil {
			t.Fatalf("%q -> %q does not parse: %v", s, m.String(), err)
		}
	})
}

// failIndexRemoval refuses to remove the index files named in it.
type failIndexRemoval struct {
	storage.Storage
	names map[string]bool
}

func (f failIndexRemoval) Remove(ctx context.Context, h storage.Handle) error {
	if h.Kind == storage.KindIndex && f.names[h.Name] {
		return errors.New("permission denied")
	}
	return f.Storage.Remove(ctx, h)
}

// TestUnremovableIndexStaysSuperseded: prune writes several index sets in
// one run. An old index file it cannot remove must be superseded by each
// of them; otherwise, once the first set is replaced, the old file's stale
// listing (of packs since deleted) would count again.
func TestUnremovableIndexStaysSuperseded(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := setupTwo(t)
	forget(t, f.st, f.old)
	l, err := openRepo(t, f.st).Lock(ctx, "backup", false)
	if err != nil {
		t.Fatal(err)
	}
	if rep := prune(t, f.st, PruneOptions{MaxUnused: MaxUnused{Percent: 0}}); rep.DeferredPacks == 0 {
		t.Fatalf("nothing condemned: %+v", rep)
	}
	_ = l.Unlock(ctx)
	// New garbage, so that the next run both finishes the record and
	// repacks: two index sets in one run.
	rng := rand.New(rand.NewPCG(41, 42))
	for p := range f.wantCur {
		repotest.WriteFile(t, filepath.Join(f.src, p), 200<<10, rng)
		break
	}
	repotest.RandomTree(t, filepath.Join(f.src, "more"), 3, 300<<10, rng)
	cur := repotest.Backup(t, f.st, []string{f.src})
	want := repotest.Files(t, f.src)
	forget(t, f.st, f.cur)
	stuck := map[string]bool{}
	for _, n := range repotest.Names(t, f.st, storage.KindIndex) {
		stuck[n] = true
	}
	rep := prune(t, failIndexRemoval{f.st, stuck}, PruneOptions{MaxUnused: MaxUnused{Percent: 0}, SafetyMargin: -1})
	if rep.DeletedPacks == 0 || rep.IndexWritten < 2 {
		t.Fatalf("the run should delete packs and write the index more than once: %+v", rep)
	}
	for n := range stuck {
		if _, err := f.st.Stat(ctx, storage.Handle{Kind: storage.KindIndex, Name: n}); err != nil {
			t.Fatalf("index %s was removed after all: %v", n, err)
		}
	}
	mustCheck(t, f.st)
	repotest.AssertRestores(t, f.st, cur, want)
	// Once removal works again, the next prune removes them.
	prune(t, f.st, PruneOptions{MaxUnused: MaxUnused{Percent: 0}, SafetyMargin: -1})
	for n := range stuck {
		if _, err := f.st.Stat(ctx, storage.Handle{Kind: storage.KindIndex, Name: n}); err == nil {
			t.Fatalf("superseded index %s still stored", n)
		}
	}
	assertIndexFiles(t, f.st, 0)
	mustCheck(t, f.st)
}
