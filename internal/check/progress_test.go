package check

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/coffer-backup/coffer/internal/storage"
)

// TestProgressPhases: each phase ends with counts that equal what the
// result reports, in order, and a reader polling Progress meanwhile sees
// counts that never pass their totals (run with -race: the reader shares
// nothing with Check but the atomics).
func TestProgressPhases(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	var packBytes uint64
	err := f.st.List(context.Background(), storage.KindData, func(fi storage.FileInfo) error {
		packBytes += uint64(fi.Size) // #nosec G115 -- sizes of a test repository
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	p := &Progress{}
	var ends []Status
	stop, polled := make(chan struct{}), make(chan error, 1)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			s := p.Status()
			if s.IndexFiles > s.IndexFilesTotal || s.Snapshots > s.SnapshotsTotal || s.PacksRead > s.PacksReadTotal || s.BytesRead > s.BytesReadTotal || s.PercentDone() > 1 {
				polled <- errStatus(s)
				return
			}
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Microsecond):
			}
		}
	}()
	res := runCheck(t, f.st, Options{ReadData: true, Progress: p, PhaseDone: func(s Status) { ends = append(ends, s) }})
	close(stop)
	wg.Wait()
	select {
	case err := <-polled:
		t.Fatal(err)
	default:
	}
	want := []Phase{PhaseIndex, PhasePacks, PhaseSnapshots, PhaseReadData}
	if len(ends) != len(want) {
		t.Fatalf("%d phases ended, want %d: %+v", len(ends), len(want), ends)
	}
	for i, s := range ends {
		if s.Phase != want[i] {
			t.Errorf("phase %d is %v, want %v", i, s.Phase, want[i])
		}
	}
	last := ends[len(ends)-1]
	for _, c := range []struct {
		what      string
		got, want uint64
	}{
		{"index files", last.IndexFiles, uint64(res.IndexFiles)},
		{"index files total", last.IndexFilesTotal, uint64(res.IndexFiles)},
		{"packs", last.Packs, uint64(res.Packs)},
		{"snapshots", last.Snapshots, uint64(len(f.snaps))},
		{"snapshots total", last.SnapshotsTotal, uint64(len(f.snaps))},
		{"trees", last.Trees, uint64(res.Trees)},
		{"packs read", last.PacksRead, uint64(res.PacksRead)},
		{"packs read total", last.PacksReadTotal, uint64(res.PacksRead)},
		{"bytes read", last.BytesRead, packBytes},
		{"bytes read total", last.BytesReadTotal, packBytes},
	} {
		if c.got != c.want || c.want == 0 {
			t.Errorf("%s: %d, want %d (not 0)", c.what, c.got, c.want)
		}
	}
	for _, s := range ends {
		if s.Phase != PhasePacks && s.PercentDone() != 1 {
			t.Errorf("%v ended at %.2f", s.Phase, s.PercentDone())
		}
	}
	// Without ReadData there is no read phase, and no Progress is needed.
	n := 0
	runCheck(t, f.st, Options{PhaseDone: func(s Status) {
		n++
		if s.Phase == PhaseReadData {
			t.Error("read data without ReadData")
		}
	}})
	if n != 3 {
		t.Errorf("%d phases without ReadData, want 3", n)
	}
}

type errStatus Status

func (s errStatus) Error() string { return "a count passed its total" }

func TestPhaseString(t *testing.T) {
	t.Parallel()
	for p, want := range map[Phase]string{PhaseIndex: "load index", PhasePacks: "list packs", PhaseSnapshots: "walk snapshots", PhaseReadData: "read data", Phase(99): "unknown", Phase(-1): "unknown"} {
		if got := p.String(); got != want {
			t.Errorf("%d: %q, want %q", p, got, want)
		}
	}
}
