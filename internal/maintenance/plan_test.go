package maintenance

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coffer-backup/coffer/internal/check"
	"github.com/coffer-backup/coffer/internal/maintenance/repotest"
	"github.com/coffer-backup/coffer/internal/repository"
	"github.com/coffer-backup/coffer/internal/storage"
	"github.com/coffer-backup/coffer/internal/storage/local"
)

func plan(t *testing.T, st storage.Storage, o PruneOptions) *Plan {
	t.Helper()
	p, err := PlanPrune(context.Background(), openRepo(t, st), o)
	if err != nil {
		t.Fatalf("plan: %v", err)
	}
	return p
}

func packSet(t *testing.T, st storage.Storage) map[repository.ID]bool {
	t.Helper()
	out := map[repository.ID]bool{}
	for _, n := range repotest.Names(t, st, storage.KindData) {
		id, err := repository.ParseID(n)
		if err != nil {
			t.Fatal(err)
		}
		out[id] = true
	}
	return out
}

// assertDoesWhatItSays executes p and compares what happened in storage
// with what the plan (and its dry-run report) said.
func assertDoesWhatItSays(t *testing.T, st storage.Storage, p *Plan) *PruneReport {
	t.Helper()
	dry := p.Report()
	before := packSet(t, st)
	rep, err := p.Execute(context.Background())
	if err != nil {
		t.Fatalf("execute: %v", err)
	}
	after := packSet(t, st)
	var gone []repository.ID
	for id := range before {
		if !after[id] {
			gone = append(gone, id)
		}
	}
	slices.SortFunc(gone, cmpID)
	if !slices.Equal(gone, dry.Deleted) || !slices.Equal(rep.Deleted, dry.Deleted) {
		t.Fatalf("the plan deletes %v; execution reports %v and removed %v", dry.Deleted, rep.Deleted, gone)
	}
	if !slices.Equal(rep.Repacked, dry.Repacked) {
		t.Fatalf("the plan repacks %v; execution repacked %v", dry.Repacked, rep.Repacked)
	}
	if fresh := len(after) - (len(before) - len(gone)); fresh != rep.NewPacks {
		t.Fatalf("%d new packs stored, %d reported", fresh, rep.NewPacks)
	}
	// Everything a dry run prints but the index work and new packs, which
	// only execution knows.
	got := *rep
	got.DryRun, got.NewPacks, got.NewPackBytes, got.IndexWritten, got.IndexRemoved = true, 0, 0, 0, 0
	got.TempFilesRemoved = 0
	for i := range got.Waiting {
		got.Waiting[i].Record, got.Waiting[i].Condemned, got.Waiting[i].HeldBefore, got.Waiting[i].NotBefore = "", time.Time{}, time.Time{}, time.Time{}
	}
	want := *dry
	for i := range want.Waiting {
		want.Waiting[i].Record, want.Waiting[i].Condemned, want.Waiting[i].HeldBefore, want.Waiting[i].NotBefore = "", time.Time{}, time.Time{}, time.Time{}
	}
	var g, w bytes.Buffer
	WriteReport(&g, &got)
	WriteReport(&w, &want)
	if g.String() != w.String() {
		t.Fatalf("dry run said:\n%s\nexecution did:\n%s", w.String(), g.String())
	}
	return rep
}

// TestPlanMatchesExecution: in each situation, executing a plan deletes
// and repacks exactly the packs its dry-run report names, and reports the
// same.
func TestPlanMatchesExecution(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	zero := PruneOptions{MaxUnused: MaxUnused{Percent: 0}}
	t.Run("repack and delete", func(t *testing.T) {
		t.Parallel()
		f := setupTwo(t)
		forget(t, f.st, f.old)
		p := plan(t, f.st, zero)
		if len(p.DeletePacks()) == 0 || len(p.RepackPacks()) == 0 {
			t.Fatalf("nothing planned: %+v", p.Report())
		}
		assertDoesWhatItSays(t, f.st, p)
		mustCheck(t, f.st)
		repotest.AssertRestores(t, f.st, f.cur, f.wantCur)
	})
	t.Run("held by a lock", func(t *testing.T) {
		t.Parallel()
		f := setupTwo(t)
		forget(t, f.st, f.old)
		l, err := openRepo(t, f.st).Lock(ctx, "backup", false)
		if err != nil {
			t.Fatal(err)
		}
		p := plan(t, f.st, zero)
		if len(p.DeletePacks()) != 0 || len(p.Condemn) == 0 {
			t.Fatalf("plan beside a lock: %+v", p.Report())
		}
		rep := assertDoesWhatItSays(t, f.st, p)
		if len(rep.Waiting) != 1 || len(rep.Waiting[0].HeldBy) != 1 {
			t.Fatalf("waiting: %+v", rep.Waiting)
		}
		_ = l.Unlock(ctx)
		// The next plan finishes that record.
		p = plan(t, f.st, zero)
		if len(p.Finish) != 1 || len(p.DeletePacks()) == 0 {
			t.Fatalf("record not finished: %+v", p.Report())
		}
		assertDoesWhatItSays(t, f.st, p)
		mustCheck(t, f.st)
		repotest.AssertRestores(t, f.st, f.cur, f.wantCur)
	})
	t.Run("unindexed within the margin", func(t *testing.T) {
		t.Parallel()
		f := setupTwo(t)
		forget(t, f.st, f.old)
		orphan := saveOrphan(t, f.st)
		p := plan(t, f.st, zero)
		if slices.Contains(p.DeletePacks(), orphan) || !slices.ContainsFunc(p.Condemn, func(pp PackPlan) bool { return pp.ID == orphan }) {
			t.Fatalf("orphan: %+v", p.Report())
		}
		assertDoesWhatItSays(t, f.st, p)
		later := PruneOptions{MaxUnused: zero.MaxUnused, Now: func() time.Time { return time.Now().Add(DefaultSafetyMargin + time.Minute) }}
		p = plan(t, f.st, later)
		if !slices.Equal(p.DeletePacks(), []repository.ID{orphan}) {
			t.Fatalf("after the margin: %+v", p.Report())
		}
		assertDoesWhatItSays(t, f.st, p)
		mustCheck(t, f.st)
	})
}

// TestExecuteNeverDeletesMoreThanPlanned: a process that starts between
// planning and execution makes execution do less; and a plan runs once.
func TestExecuteNeverDeletesMoreThanPlanned(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := setupTwo(t)
	forget(t, f.st, f.old)
	p := plan(t, f.st, PruneOptions{MaxUnused: MaxUnused{Percent: 0}})
	if len(p.DeletePacks()) == 0 {
		t.Fatalf("nothing planned: %+v", p.Report())
	}
	l, err := openRepo(t, f.st).Lock(ctx, "backup", false)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = l.Unlock(ctx) }()
	before := packSet(t, f.st)
	rep, err := p.Execute(ctx)
	if err != nil {
		t.Fatal(err)
	}
	after := packSet(t, f.st)
	for id := range before {
		if !after[id] {
			t.Fatalf("pack %s deleted while a lock that started before the record exists", id.Short())
		}
	}
	if rep.DeletedPacks != 0 || rep.PendingRecords != 1 || len(rep.BlockedByLocks) != 1 {
		t.Fatalf("%+v", rep)
	}
	if _, err := p.Execute(ctx); !errors.Is(err, ErrPlanExecuted) {
		t.Fatalf("second Execute: %v", err)
	}
	mustCheck(t, f.st)
}

// TestWaitingMessages: the report says what happened to condemned packs
// and from when a later prune deletes them, and claims no deletion that
// did not happen.
func TestWaitingMessages(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := setupTwo(t)
	forget(t, f.st, f.old)
	l, err := openRepo(t, f.st).Lock(ctx, "backup", false)
	if err != nil {
		t.Fatal(err)
	}
	lockLine := l.Info()
	now := time.Now().Truncate(time.Second)
	o := PruneOptions{MaxUnused: DefaultMaxUnused, Now: func() time.Time { return now }}
	p := plan(t, f.st, o)
	var dry bytes.Buffer
	WriteReport(&dry, p.Report())
	rep, err := p.Execute(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var done bytes.Buffer
	WriteReport(&done, rep)
	t.Logf("dry run:\n%s\nrun:\n%s", dry.String(), done.String())
	held := now.Add(DefaultClockSkew).Local().Format(timeFormat)
	for _, c := range []struct {
		name, text string
		want       []string
	}{
		{"dry run", dry.String(), []string{"would be repacked", "0 packs (0 B) would be deleted", "condemned by this run wait for a later prune",
			"the first prune after these locks end deletes them", "started before " + held, lockLine.String()}},
		{"run", done.String(), []string{"condemned at " + now.Local().Format(timeFormat) + " wait for a later prune",
			"0 packs (0 B) deleted", "the first prune after these locks end deletes them", "started before " + held, lockLine.String()}},
	} {
		for _, w := range c.want {
			if !strings.Contains(c.text, w) {
				t.Errorf("%s: report lacks %q:\n%s", c.name, w, c.text)
			}
		}
		if strings.Contains(c.text, "same run") || strings.Contains(c.text, "before they were condemned") {
			t.Errorf("%s: report claims what did not happen:\n%s", c.name, c.text)
		}
	}
	_ = l.Unlock(ctx)

	// A pack in no index waits for the safety margin, and the report says
	// until when.
	saveOrphan(t, f.st)
	rep, err = Prune(ctx, openRepo(t, f.st), o)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	WriteReport(&b, rep)
	want := "1 of them are in no index: a prune after " + now.Add(DefaultSafetyMargin).Local().Format(timeFormat) + " (the safety margin)"
	if !strings.Contains(b.String(), want) || rep.DeletedPacks == 0 {
		t.Fatalf("report lacks %q or deleted nothing:\n%s", want, b.String())
	}
}

// TestPruneRemovesOldTempFiles: temporary files a killed writer left are
// reported by check and removed by prune once older than the safety
// margin; younger ones may be writes in progress and stay (issue 10,
// item 18).
func TestPruneRemovesOldTempFiles(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "repo")
	st, err := local.Create(dir)
	if err != nil {
		t.Fatal(err)
	}
	repotest.Init(t, st)
	old := []string{filepath.Join(dir, "data", "00", ".tmp-old"), filepath.Join(dir, "index", ".tmp-old")}
	fresh := filepath.Join(dir, "snapshots", ".tmp-fresh")
	for _, p := range append(slices.Clone(old), fresh) {
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, make([]byte, 1000), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	past := time.Now().Add(-2 * DefaultSafetyMargin)
	for _, p := range old {
		if err := os.Chtimes(p, past, past); err != nil {
			t.Fatal(err)
		}
	}
	res, err := check.Check(ctx, openRepo(t, st), check.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if res.TempFiles != 2 || res.TempBytes != 2000 || len(res.Warnings) == 0 || res.Damaged() {
		t.Fatalf("check: %+v", res)
	}
	p := plan(t, st, PruneOptions{})
	if p.TempFiles != 2 {
		t.Fatalf("plan counts %d temporary files, want 2", p.TempFiles)
	}
	rep, err := p.Execute(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if rep.TempFilesRemoved != 2 {
		t.Fatalf("removed %d temporary files, want 2", rep.TempFilesRemoved)
	}
	for _, p := range old {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("%s: %v", p, err)
		}
	}
	if _, err := os.Stat(fresh); err != nil {
		t.Fatalf("a fresh temporary file was removed: %v", err)
	}
	if res := mustCheckOpts(t, st, check.Options{}); res.TempFiles != 0 {
		t.Fatalf("check after prune: %+v", res)
	}
}
