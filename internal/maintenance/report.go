package maintenance

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/coffer-backup/coffer/internal/bytesize"
	"github.com/coffer-backup/coffer/internal/repository"
)

// PruneReport says what a prune did, or for a plan (DryRun) what it will
// do. The JSON field names are stable.
type PruneReport struct {
	DryRun bool `json:"dry_run"`
	// Stopped, when not empty, is why execution stopped before it
	// finished (an error or an interruption): the counts are then of what
	// was done up to that point, and nothing else.
	Stopped        string   `json:"stopped,omitempty"`
	Snapshots      int      `json:"snapshots"`
	UsedBlobs      int      `json:"used_blobs"`
	PacksBefore    int      `json:"packs_before"`
	BytesBefore    int64    `json:"bytes_before"`
	UnusedPacks    int      `json:"unused_packs"`
	UnusedBytes    int64    `json:"unused_bytes"`
	RepackedPacks  int      `json:"repacked_packs"`
	RepackedBlobs  int      `json:"repacked_blobs"`
	RepackedBytes  int64    `json:"repacked_bytes"`
	OldTermPacks   int      `json:"old_term_packs,omitempty"`
	NewPacks       int      `json:"new_packs"`
	NewPackBytes   int64    `json:"new_pack_bytes"`
	UnindexedPacks int      `json:"unindexed_packs"`
	UnindexedKept  int      `json:"unindexed_left_alone"`
	MissingPacks   int      `json:"missing_packs"`
	CondemnedPacks int      `json:"condemned_packs"`
	DeletedPacks   int      `json:"deleted_packs"`
	DeletedBytes   int64    `json:"deleted_bytes"`
	RescuedPacks   int      `json:"rescued_packs"`
	DeferredPacks  int      `json:"deferred_packs"`
	IndexWritten   int      `json:"index_files_written"`
	IndexRemoved   int      `json:"index_files_removed"`
	BlockedByLocks []string `json:"blocked_by_locks,omitempty"`
	PendingRecords int      `json:"pending_condemned_records"`
	// Waiting describes each condemned record left for a later prune:
	// what holds its packs and from when they can go.
	Waiting []WaitingRecord `json:"waiting_records,omitempty"`
	// TempFiles and TempBytes: temporary files of killed writers older
	// than the safety margin (a plan counts them); TempFilesRemoved: how
	// many were removed.
	TempFiles        int   `json:"temp_files,omitempty"`
	TempBytes        int64 `json:"temp_bytes,omitempty"`
	TempFilesRemoved int   `json:"temp_files_removed,omitempty"`

	// Deleted and Repacked name the packs deleted and repacked, in ID
	// order.
	Deleted  []repository.ID `json:"-"`
	Repacked []repository.ID `json:"-"`

	// With RewriteOldTerms: the term everything is moved to, the forget and
	// condemned records re-sealed, the snapshots replaced (old ID to new
	// ID, hex) and, by storage kind, what is still sealed with an older
	// term afterwards (config and keyring/* use term 0 by design and are
	// not counted).
	CurrentTerm        uint32            `json:"current_term,omitempty"`
	RewrittenRecords   int               `json:"rewritten_records,omitempty"`
	RewrittenSnapshots int               `json:"rewritten_snapshots,omitempty"`
	ReplacedSnapshots  map[string]string `json:"replaced_snapshots,omitempty"`
	OldTermObjects     map[string]int    `json:"old_term_objects,omitempty"`
}

// WaitingRecord is a condemned record a later prune finishes. Its packs
// are deleted by the first prune that runs once every lock in HeldBy has
// ended (locks that start after HeldBefore do not hold them); those of
// them no index names (Unindexed) go only after NotBefore, by a prune
// that finds no other process's lock.
type WaitingRecord struct {
	Record     string    `json:"record,omitempty"` // empty for the record a plan has yet to write
	Condemned  time.Time `json:"condemned"`
	Packs      int       `json:"packs"`
	Bytes      int64     `json:"bytes"`
	HeldBy     []string  `json:"held_by,omitempty"`
	HeldBefore time.Time `json:"held_before"`
	Unindexed  int       `json:"unindexed,omitempty"`
	NotBefore  time.Time `json:"not_before,omitzero"`
}

// baseReport holds what the plan read.
func (p *Plan) baseReport(dry bool) *PruneReport {
	return &PruneReport{DryRun: dry, Snapshots: p.Snapshots, UsedBlobs: p.UsedBlobs, PacksBefore: p.PacksBefore,
		BytesBefore: p.BytesBefore, TempFiles: p.TempFiles, TempBytes: p.TempBytes, UnindexedKept: p.UnindexedKept}
}

// countCondemned counts the packs of the new record by reason.
func (r *PruneReport) countCondemned(packs []PackPlan) {
	r.CondemnedPacks = len(packs)
	for _, pp := range packs {
		switch pp.Reason {
		case ReasonUnused:
			r.UnusedPacks++
			r.UnusedBytes += pp.Size
		case ReasonUnindexed:
			r.UnindexedPacks++
		case ReasonOldTerm:
			r.OldTermPacks++
		}
		if pp.Repacked() {
			r.RepackedPacks++
			r.RepackedBlobs += pp.UsedBlobs
			r.RepackedBytes += pp.UsedBytes
		}
	}
}

// setWaiting fills the fields about records left condemned; recs carry
// the packs that stay condemned in Keep.
func (r *PruneReport) setWaiting(s *state, recs []*RecordPlan) {
	packs := map[repository.ID]bool{}
	r.Waiting, r.BlockedByLocks, r.PendingRecords = nil, nil, 0
	for _, rp := range recs {
		if len(rp.Keep) == 0 {
			continue
		}
		r.PendingRecords++
		w := WaitingRecord{Condemned: rp.Time, Packs: len(rp.Keep), HeldBy: rp.BlockedBy, HeldBefore: rp.HeldBefore}
		if rp.ID != (repository.ID{}) {
			w.Record = rp.ID.String()
		}
		for _, pk := range rp.Keep {
			packs[pk] = true
			w.Bytes += s.stored[pk]
			if _, ok := s.active[pk]; !ok {
				w.Unindexed++
			}
		}
		if w.Unindexed > 0 && s.o.SafetyMargin > 0 {
			w.NotBefore = rp.Time.Add(s.o.SafetyMargin)
		}
		r.Waiting = append(r.Waiting, w)
		r.BlockedByLocks = append(r.BlockedByLocks, rp.BlockedBy...)
	}
	slices.Sort(r.BlockedByLocks)
	r.BlockedByLocks = slices.Compact(r.BlockedByLocks)
	r.DeferredPacks = len(packs)
}

// Report is the plan as a dry run reports it: what Execute will do when
// nothing else changes the repository meanwhile.
func (p *Plan) Report() *PruneReport {
	r := p.baseReport(true)
	r.countCondemned(p.Condemn)
	r.MissingPacks = len(p.DropMissing)
	recs := slices.Concat(p.Finish, p.Waiting)
	if p.NewRecord != nil {
		recs = append(recs, p.NewRecord)
	}
	r.Deleted = unionIDs(recs, deleted)
	r.Repacked = p.RepackPacks()
	r.DeletedPacks = len(r.Deleted)
	for _, id := range r.Deleted {
		r.DeletedBytes += p.st.stored[id]
	}
	r.RescuedPacks = len(unionIDs(p.Finish, rescued))
	r.setWaiting(p.st, recs)
	r.CurrentTerm = p.CurrentTerm
	r.RewrittenRecords, r.RewrittenSnapshots = p.RewriteRecords, p.RewriteSnapshots
	return r
}

// timeFormat is how the report prints times: local, to the second.
const timeFormat = "2006-01-02 15:04:05 MST"

// WriteReport writes r for a person: what prune did (or, for a dry run,
// will do), and for each record left condemned what holds its packs and
// from when a later prune deletes them.
func WriteReport(w io.Writer, r *PruneReport) {
	would := ""
	if r.DryRun {
		would = "would be "
		fmt.Fprintf(w, "dry run: nothing is changed\n")
	}
	if r.Stopped != "" {
		fmt.Fprintf(w, "prune stopped before it finished (%s); it did only this:\n", r.Stopped)
	}
	fmt.Fprintf(w, "%d snapshots use %d blobs; %d packs, %s before\n", r.Snapshots, r.UsedBlobs, r.PacksBefore, bytesize.Format(r.BytesBefore))
	writeCondemned(w, r, would)
	fmt.Fprintf(w, "%d packs (%s) %sdeleted\n", r.DeletedPacks, bytesize.Format(r.DeletedBytes), would)
	if r.TempFiles > 0 || r.TempFilesRemoved > 0 {
		n := r.TempFilesRemoved
		if r.DryRun {
			n = r.TempFiles
		}
		fmt.Fprintf(w, "%d temporary files left by interrupted writes %sremoved\n", n, would)
	}
	for _, wr := range r.Waiting {
		writeWaiting(w, wr)
	}
	writeTermReport(w, r, would)
}

func writeCondemned(w io.Writer, r *PruneReport, would string) {
	if r.RescuedPacks > 0 {
		fmt.Fprintf(w, "%d condemned packs are in use again and %skept\n", r.RescuedPacks, would)
	}
	if r.UnusedPacks > 0 {
		fmt.Fprintf(w, "%d unused packs (%s) %scondemned\n", r.UnusedPacks, bytesize.Format(r.UnusedBytes), would)
	}
	if r.RepackedPacks > 0 {
		fmt.Fprintf(w, "%d packs %srepacked: %d used blobs (%s) copied", r.RepackedPacks, would, r.RepackedBlobs, bytesize.Format(r.RepackedBytes))
		if r.OldTermPacks > 0 {
			fmt.Fprintf(w, ", %d of them for an older key term", r.OldTermPacks)
		}
		fmt.Fprintf(w, "\n")
	}
	if r.UnindexedPacks > 0 {
		fmt.Fprintf(w, "%d packs in no index %scondemned\n", r.UnindexedPacks, would)
	}
	if r.UnindexedKept > 0 {
		fmt.Fprintf(w, "%d packs in no index left alone: other processes hold locks and may be about to index them\n", r.UnindexedKept)
	}
	if r.MissingPacks > 0 {
		fmt.Fprintf(w, "%d index entries for missing packs %sdropped\n", r.MissingPacks, would)
	}
}

// writeWaiting says what holds one record's packs and when they go.
func writeWaiting(w io.Writer, wr WaitingRecord) {
	when := "at " + wr.Condemned.Local().Format(timeFormat)
	if wr.Record == "" {
		when = "by this run"
	}
	fmt.Fprintf(w, "%d packs (%s) condemned %s wait for a later prune:\n", wr.Packs, bytesize.Format(wr.Bytes), when)
	indexed := wr.Packs - wr.Unindexed
	switch {
	case len(wr.HeldBy) > 0:
		fmt.Fprintf(w, "  the first prune after these locks end deletes them (processes that started before %s may still use the packs; later ones do not hold them back):\n",
			wr.HeldBefore.Local().Format(timeFormat))
		for _, l := range wr.HeldBy {
			fmt.Fprintf(w, "    %s\n", l)
		}
	case indexed > 0:
		fmt.Fprintf(w, "  the next prune deletes %d of them\n", indexed)
	}
	if wr.Unindexed > 0 {
		after := "any time"
		if !wr.NotBefore.IsZero() {
			after = wr.NotBefore.Local().Format(timeFormat)
		}
		fmt.Fprintf(w, "  %d of them are in no index: a prune after %s (the safety margin) that finds no other process's lock deletes them\n",
			wr.Unindexed, after)
	}
}

// writeTermReport says what --rewrite-old-terms did and what is left.
func writeTermReport(w io.Writer, r *PruneReport, would string) {
	if r.CurrentTerm == 0 {
		return
	}
	fmt.Fprintf(w, "%d snapshots and %d records %sre-sealed with key term %d\n", r.RewrittenSnapshots, r.RewrittenRecords, would, r.CurrentTerm)
	olds := make([]string, 0, len(r.ReplacedSnapshots))
	for o := range r.ReplacedSnapshots {
		olds = append(olds, o)
	}
	slices.Sort(olds)
	for _, o := range olds {
		fmt.Fprintf(w, "  snapshot %s is now %s\n", shortHex(o), shortHex(r.ReplacedSnapshots[o]))
	}
	if r.DryRun {
		return
	}
	if len(r.OldTermObjects) == 0 {
		fmt.Fprintf(w, "every object is sealed with key term %d (config and keyring use the repository key by design)\n", r.CurrentTerm)
		return
	}
	kinds := make([]string, 0, len(r.OldTermObjects))
	for k, n := range r.OldTermObjects {
		kinds = append(kinds, fmt.Sprintf("%d %s", n, k))
	}
	slices.Sort(kinds)
	fmt.Fprintf(w, "still sealed with an older key term: %s\n", strings.Join(kinds, ", "))
	fmt.Fprintf(w, "(packs in no index wait for --safety-margin, locks for their owners; run prune --rewrite-old-terms again later)\n")
}

func shortHex(hexID string) string {
	if len(hexID) > 8 {
		return hexID[:8]
	}
	return hexID
}
