package check

import "sync/atomic"

// Phase is a step of Check, in the order the steps run.
type Phase int32

// The phases of Check. PhaseReadData runs only with Options.ReadData.
const (
	PhaseNone      Phase = iota // not started
	PhaseIndex                  // load every index file
	PhasePacks                  // list the packs and compare them with the index
	PhaseSnapshots              // load every snapshot and walk its trees
	PhaseReadData               // read the selected packs and verify every blob
)

var phaseNames = [...]string{"starting", "load index", "list packs", "walk snapshots", "read data"}

// String returns the phase's name as the CLI prints it ("load index").
func (p Phase) String() string {
	if p < 0 || int(p) >= len(phaseNames) {
		return "unknown"
	}
	return phaseNames[p]
}

// Progress counts Check's work while it runs. Check writes it; any
// goroutine may read it at any time through Status. A total is zero until
// its phase has listed what it will do; the zero value is ready to use.
type Progress struct {
	phase atomic.Int32

	indexFiles, indexFilesTotal atomic.Uint64
	packs                       atomic.Uint64
	snapshots, snapshotsTotal   atomic.Uint64
	trees                       atomic.Uint64
	packsRead, packsReadTotal   atomic.Uint64
	bytesRead, bytesReadTotal   atomic.Uint64
}

// Status is a copy of Progress at one moment: what a progress display
// prints.
type Status struct {
	Phase           Phase
	IndexFiles      uint64 // index files loaded (or found unreadable)
	IndexFilesTotal uint64
	Packs           uint64 // packs listed in storage; no total is known before the listing ends
	Snapshots       uint64 // snapshots loaded (or found unreadable)
	SnapshotsTotal  uint64
	Trees           uint64 // distinct trees walked; no total is known before the walk ends
	PacksRead       uint64 // packs read and verified (ReadData)
	PacksReadTotal  uint64
	BytesRead       uint64 // stored bytes of the packs read
	BytesReadTotal  uint64
}

// Status returns the counts now. Counts of different phases are each
// consistent with themselves; the phase may move on while it is read.
func (p *Progress) Status() Status {
	return Status{
		Phase:      Phase(p.phase.Load()),
		IndexFiles: p.indexFiles.Load(), IndexFilesTotal: p.indexFilesTotal.Load(),
		Packs:     p.packs.Load(),
		Snapshots: p.snapshots.Load(), SnapshotsTotal: p.snapshotsTotal.Load(),
		Trees:     p.trees.Load(),
		PacksRead: p.packsRead.Load(), PacksReadTotal: p.packsReadTotal.Load(),
		BytesRead: p.bytesRead.Load(), BytesReadTotal: p.bytesReadTotal.Load(),
	}
}

// PercentDone is how much of the current phase is done, from 0 to 1: index
// files, snapshots, or bytes read of the totals. A phase without a total
// (listing packs) or whose total is not known yet reports 0.
func (s Status) PercentDone() float64 {
	var done, total uint64
	switch s.Phase {
	case PhaseIndex:
		done, total = s.IndexFiles, s.IndexFilesTotal
	case PhaseSnapshots:
		done, total = s.Snapshots, s.SnapshotsTotal
	case PhaseReadData:
		done, total = s.BytesRead, s.BytesReadTotal
		if total == 0 {
			done, total = s.PacksRead, s.PacksReadTotal
		}
	}
	if total == 0 {
		return 0
	}
	return min(float64(done)/float64(total), 1)
}

// begin moves to phase p.
func (p *Progress) begin(ph Phase) { p.phase.Store(int32(ph)) }
