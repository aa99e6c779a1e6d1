package maintenance

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/coffer-backup/coffer/internal/maintenance/repotest"
	"github.com/coffer-backup/coffer/internal/storage"
)

// TestReplayedIndexStaysSuperseded puts back every index file a prune
// replaced, after a prune that repacked (writing one index set) and then
// deleted (writing another): the replayed files must stay superseded, so
// their deleted packs are not indexed again (issue 10, item 2).
func TestReplayedIndexStaysSuperseded(t *testing.T) {
	t.Parallel()
	f := setupTwo(t)
	ctx := context.Background()
	before := map[string][]byte{}
	for _, name := range repositoryNames(t, f.st, storage.KindIndex) {
		b, err := f.st.Load(ctx, storage.Handle{Kind: storage.KindIndex, Name: name}, 0, -1)
		if err != nil {
			t.Fatal(err)
		}
		before[name] = b
	}
	forget(t, f.st, f.old)
	rep := prune(t, f.st, PruneOptions{MaxUnused: MaxUnused{Percent: 0}, SafetyMargin: -1})
	if rep.DeletedPacks == 0 || rep.RepackedPacks == 0 {
		t.Fatalf("prune did not both repack and delete: %+v", rep)
	}
	for name, b := range before {
		if err := f.st.Save(ctx, storage.Handle{Kind: storage.KindIndex, Name: name}, b); err != nil {
			t.Fatal(err)
		}
	}
	r := openRepo(t, f.st)
	if err := r.LoadIndex(ctx); err != nil {
		t.Fatal(err)
	}
	for _, id := range rep.Deleted {
		for _, p := range r.Index().Packs() {
			if p == id {
				t.Fatalf("deleted pack %s is indexed again by a replayed index file", id.Short())
			}
		}
	}
	repotest.AssertRestores(t, f.st, f.cur, f.wantCur)
}

func repositoryNames(t *testing.T, st storage.Storage, k storage.Kind) []string {
	t.Helper()
	var out []string
	if err := st.List(context.Background(), k, func(fi storage.FileInfo) error { out = append(out, fi.Name); return nil }); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestInterruptedPruneReportsOnlyWhatItDid stops prune after its first
// write: the report must say that it stopped and count no deletion it did
// not make (issue 10, item 20).
func TestInterruptedPruneReportsOnlyWhatItDid(t *testing.T) {
	t.Parallel()
	f := setupTwo(t)
	forget(t, f.st, f.old)
	faulty := &crashAfter{Storage: cloneMem(t, f.st), n: 1 << 30}
	plan, err := PlanPrune(context.Background(), openRepo(t, faulty), PruneOptions{MaxUnused: MaxUnused{Percent: 0}, SafetyMargin: -1})
	if err != nil {
		t.Fatal(err)
	}
	if len(plan.DeletePacks()) == 0 {
		t.Fatal("the plan deletes nothing: the test would prove nothing")
	}
	faulty.n = faulty.done + 1
	rep, err := plan.Execute(context.Background())
	if !errors.Is(err, errCrash) {
		t.Fatalf("want the simulated crash, got %v", err)
	}
	if rep == nil || rep.Stopped == "" {
		t.Fatalf("report does not say prune stopped: %+v", rep)
	}
	if rep.DeletedPacks != 0 || rep.CondemnedPacks != 0 {
		t.Fatalf("report counts work not done: %+v", rep)
	}
	var buf bytes.Buffer
	WriteReport(&buf, rep)
	if !strings.Contains(buf.String(), "stopped before it finished") || !strings.Contains(buf.String(), "0 packs (0 B) deleted") {
		t.Fatalf("report text:\n%s", buf.String())
	}
}
