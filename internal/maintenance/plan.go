package maintenance

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/coffer-backup/coffer/internal/repository"
	"github.com/coffer-backup/coffer/internal/storage"
)

// Reason says why a plan condemns a pack.
type Reason string

// The reasons a pack is condemned.
const (
	ReasonUnused      Reason = "unused"       // no blob of it is used
	ReasonUnusedShare Reason = "unused-share" // repacked: too much of it is unused (--max-unused)
	ReasonOldTerm     Reason = "old-term"     // repacked: sealed with an older key term
	ReasonUnindexed   Reason = "unindexed"    // no index file names it
)

// PackPlan is one pack a plan condemns.
type PackPlan struct {
	ID     repository.ID
	Size   int64 // stored bytes
	Reason Reason
	// UsedBlobs and UsedBytes are what a repack copies to new packs first
	// (zero for unused and unindexed packs); UnusedBytes is what it drops.
	UsedBlobs   int
	UsedBytes   int64
	UnusedBytes int64
}

// Repacked reports whether the pack's used blobs are copied before it is
// condemned.
func (p PackPlan) Repacked() bool {
	return p.Reason == ReasonUnusedShare || p.Reason == ReasonOldTerm
}

// Plan is what one prune will do, decided from one reading of the
// repository (locks, condemned records, snapshots, index, packs) without
// writing anything. Execute carries it out; a dry run prints it.
type Plan struct {
	// Time is when the plan was made; the record Execute writes carries
	// the time it is written.
	Time        time.Time
	Snapshots   int
	UsedBlobs   int
	PacksBefore int
	BytesBefore int64
	// Finish are earlier condemned records that are ready, with what
	// happens to each pack; Waiting are those other processes' locks hold.
	Finish  []*RecordPlan
	Waiting []*RecordPlan
	// Condemn are the packs of the record this run writes, in ID order.
	Condemn []PackPlan
	// NewRecord is that record (nil when nothing is condemned). Its Delete
	// lists the packs deleted in the same run: the indexed ones, when no
	// other process held a lock while planning. Its Keep lists the rest.
	NewRecord *RecordPlan
	// DropMissing are index entries of packs that are not stored.
	DropMissing []repository.ID
	// UnindexedKept counts packs no index names that are left alone
	// because other processes hold locks.
	UnindexedKept int
	// TempFiles (and TempBytes) are temporary files older than the safety
	// margin, left by killed processes; Execute removes them. Zero when
	// the storage cannot list them.
	TempFiles int
	TempBytes int64
	// With RewriteOldTerms: the current term and the records and
	// snapshots to re-seal.
	CurrentTerm      uint32
	RewriteRecords   int
	RewriteSnapshots int

	st       *state
	busy     bool                                     // other processes held locks while planning
	keep     map[repository.ID][]repository.PackEntry // blobs each repacked pack gives up
	executed bool
}

func (o PruneOptions) withDefaults() PruneOptions {
	if o.SafetyMargin == 0 {
		o.SafetyMargin = DefaultSafetyMargin
	}
	if o.ClockSkew == 0 {
		o.ClockSkew = DefaultClockSkew
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Log == nil {
		o.Log = func(string, ...any) {}
	}
	if o.indexFileBlobs == 0 {
		o.indexFileBlobs = repository.DefaultIndexFileBlobs
	}
	return o
}

// PlanPrune reads the repository and decides what a prune does, writing
// nothing: which earlier condemned records are finished and how, which
// packs are condemned (and why), which of them are repacked first and
// which go in the same run. It reads the locks first, then the condemned
// records, snapshots, index and pack listing, so a record found ready
// cannot be relied on by a process it missed. Any listing, index,
// snapshot or tree error returns an error; ErrUnsafe when the repository
// needs checking.
func PlanPrune(ctx context.Context, r *repository.Repository, o PruneOptions) (*Plan, error) {
	o = o.withDefaults()
	if o.RewriteOldTerms && o.Lock != nil && !o.Lock.Info().Exclusive {
		return nil, errors.New("--rewrite-old-terms needs an exclusive lock")
	}
	s := newState(r, o)
	p := &Plan{Time: o.Now().UTC(), st: s}
	o.Log("loading index and finding used data")
	others, err := s.otherLocks(ctx)
	if err != nil {
		return nil, err
	}
	recs, err := r.LoadCondemned(ctx)
	if err != nil {
		return nil, err
	}
	if err := s.refresh(ctx); err != nil {
		return nil, err
	}
	p.PacksBefore = len(s.stored)
	for _, sz := range s.stored {
		p.BytesBefore += sz
	}
	p.busy = len(others) > 0
	p.planRecords(recs, others)
	if err := p.planCondemn(ctx); err != nil {
		return nil, err
	}
	if err := p.planExtras(ctx); err != nil {
		return nil, err
	}
	p.Snapshots, p.UsedBlobs = len(s.snaps), len(s.used.blobs)
	return p, nil
}

// planRecords decides the earlier records.
func (p *Plan) planRecords(recs []*repository.CondemnedRecord, others []*repository.LockInfo) {
	all := make([]*RecordPlan, 0, len(recs))
	for _, rec := range recs {
		all = append(all, p.st.recordPlan(rec, others))
	}
	p.st.settle(all, len(others) > 0, p.Time)
	for _, rp := range all {
		if rp.Ready {
			p.Finish = append(p.Finish, rp)
		} else {
			p.Waiting = append(p.Waiting, rp)
		}
	}
}

// afterRecords is the repository as finishing the earlier records leaves
// it: removed packs are deleted or gone, doomed ones still condemned.
type afterRecords struct {
	removed, doomed map[repository.ID]bool
}

func (p *Plan) afterRecords() afterRecords {
	a := afterRecords{removed: map[repository.ID]bool{}, doomed: map[repository.ID]bool{}}
	for _, rp := range slices.Concat(p.Finish, p.Waiting) {
		for _, id := range slices.Concat(rp.Delete, rp.Gone) {
			a.removed[id] = true
		}
		for _, id := range rp.Keep {
			a.doomed[id] = true
		}
	}
	return a
}

type packUse struct {
	keep  []repository.PackEntry
	usedB int64
}

// keepers chooses, for each used blob, the pack that keeps it: the smallest
// ID among the stored packs that hold it and stay uncondemned. Blobs only
// in condemned packs are left to the record's next finish, which rescues
// their packs.
func (p *Plan) keepers(a afterRecords) map[repository.ID]*packUse {
	s := p.st
	use := map[repository.ID]*packUse{}
	for h := range s.used.blobs {
		var best *blobLoc
		for i, l := range s.loc[h] {
			if _, ok := s.stored[l.pack]; !ok || a.doomed[l.pack] || a.removed[l.pack] {
				continue
			}
			if best == nil || cmpID(l.pack, best.pack) < 0 {
				best = &s.loc[h][i]
			}
		}
		if best == nil {
			continue
		}
		u := use[best.pack]
		if u == nil {
			u = &packUse{}
			use[best.pack] = u
		}
		u.keep = append(u.keep, best.entry)
		u.usedB += int64(best.entry.Length)
	}
	return use
}

// planCondemn decides which packs the new record condemns: unused ones,
// those repacked for their unused share or key term, and unindexed ones
// when no other process holds a lock.
func (p *Plan) planCondemn(ctx context.Context) error {
	s := p.st
	a := p.afterRecords()
	use := p.keepers(a)
	p.keep = map[repository.ID][]repository.PackEntry{}
	var mixed []PackPlan
	var totalUsed int64
	for _, u := range use {
		totalUsed += u.usedB
	}
	for _, id := range sortedIDs(s.active) {
		if a.doomed[id] || a.removed[id] {
			continue
		}
		pp, err := p.classify(ctx, id, use[id])
		if err != nil {
			return err
		}
		switch {
		case pp == nil:
		case pp.Reason == ReasonUnusedShare:
			mixed = append(mixed, *pp)
		default:
			p.Condemn = append(p.Condemn, *pp)
		}
	}
	p.Condemn = append(p.Condemn, chooseRepacks(mixed, s.o.MaxUnused.Limit(totalUsed))...)
	for _, pp := range p.Condemn {
		if pp.Repacked() {
			p.keep[pp.ID] = use[pp.ID].keep
		}
	}
	unindexed, err := p.unindexed(ctx, a)
	if err != nil {
		return err
	}
	p.Condemn = append(p.Condemn, unindexed...)
	slices.SortFunc(p.Condemn, func(x, y PackPlan) int { return cmpID(x.ID, y.ID) })
	return p.planNewRecord(ctx)
}

// classify looks at one active pack that stays uncondemned: it is missing,
// unused, of an older term, a candidate for repacking (ReasonUnusedShare)
// or fine (nil).
func (p *Plan) classify(ctx context.Context, id repository.ID, u *packUse) (*PackPlan, error) {
	s := p.st
	size, ok := s.stored[id]
	if !ok {
		p.DropMissing = append(p.DropMissing, id)
		return nil, nil
	}
	pp := &PackPlan{ID: id, Size: size}
	if u == nil {
		pp.Reason = ReasonUnused
		return pp, nil
	}
	all := s.active[id].Blobs
	pp.UsedBlobs, pp.UsedBytes = len(u.keep), u.usedB
	for _, e := range all {
		pp.UnusedBytes += int64(e.Length)
	}
	pp.UnusedBytes -= u.usedB
	if s.o.RewriteOldTerms {
		pr, err := s.r.OpenPackHeader(ctx, id)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrUnsafe, err)
		}
		if pr.Term() < s.r.CurrentTerm() {
			pp.Reason = ReasonOldTerm
			return pp, nil
		}
	}
	if len(u.keep) < len(all) {
		pp.Reason = ReasonUnusedShare
		return pp, nil
	}
	return nil, nil
}

// chooseRepacks picks, from packs holding used and unused data, those with
// the largest unused share first until the unused data left is within
// limit.
func chooseRepacks(mixed []PackPlan, limit int64) []PackPlan {
	var totalUnused int64
	for _, pp := range mixed {
		totalUnused += pp.UnusedBytes
	}
	share := func(pp PackPlan) float64 { return float64(pp.UnusedBytes) / float64(pp.UnusedBytes+pp.UsedBytes) }
	slices.SortStableFunc(mixed, func(a, b PackPlan) int {
		ra, rb := share(a), share(b)
		switch {
		case ra > rb:
			return -1
		case ra < rb:
			return 1
		}
		return cmpID(a.ID, b.ID)
	})
	var out []PackPlan
	for _, pp := range mixed {
		if totalUnused <= limit {
			break
		}
		out = append(out, pp)
		totalUnused -= pp.UnusedBytes
	}
	return out
}

// unindexed returns the stored packs no index names, to condemn, or counts
// them as kept when another process holds a lock: it may be about to
// index them. The locks are read after the pack listing, so a pack listed
// with no lock left belongs to a process that is gone.
func (p *Plan) unindexed(ctx context.Context, a afterRecords) ([]PackPlan, error) {
	s := p.st
	var out []PackPlan
	for _, id := range sortedIDs(s.stored) {
		if _, ok := s.active[id]; !ok && !a.doomed[id] && !a.removed[id] {
			out = append(out, PackPlan{ID: id, Size: s.stored[id], Reason: ReasonUnindexed})
		}
	}
	if len(out) == 0 {
		return nil, nil
	}
	others, err := s.otherLocks(ctx)
	if err != nil {
		return nil, err
	}
	if len(others) > 0 {
		p.UnindexedKept = len(out)
		return nil, nil
	}
	return out, nil
}

// planNewRecord predicts the same-run finish of the new record: with no
// other lock it is ready at once; its indexed packs go, its unindexed ones
// wait for the safety margin.
func (p *Plan) planNewRecord(ctx context.Context) error {
	if len(p.Condemn) == 0 {
		return nil
	}
	others, err := p.st.otherLocks(ctx)
	if err != nil {
		return err
	}
	rec := &repository.CondemnedRecord{Time: p.Time}
	for _, pp := range p.Condemn {
		rec.Packs = append(rec.Packs, pp.ID)
	}
	rp := p.st.recordPlan(rec, others)
	if rp.Ready {
		for _, pp := range p.Condemn {
			if pp.Reason != ReasonUnindexed || p.st.o.SafetyMargin < 0 {
				rp.Delete = append(rp.Delete, pp.ID)
			} else {
				rp.Keep = append(rp.Keep, pp.ID)
			}
		}
	}
	p.NewRecord = rp
	return nil
}

// planExtras counts the temporary files to remove and, with
// RewriteOldTerms, the records and snapshots to re-seal.
func (p *Plan) planExtras(ctx context.Context) error {
	if tl, ok := storage.As[tempLister](p.st.r.Storage()); ok {
		if age, ok := p.tempAge(); ok {
			n, b, err := tl.TempFiles(age)
			if err != nil {
				return err
			}
			p.TempFiles, p.TempBytes = n, b
		}
	}
	if !p.st.o.RewriteOldTerms {
		return nil
	}
	return p.planOldTerms(ctx)
}

// DeletePacks returns the packs the plan deletes, in ID order.
func (p *Plan) DeletePacks() []repository.ID {
	recs := slices.Clone(p.Finish)
	if p.NewRecord != nil {
		recs = append(recs, p.NewRecord)
	}
	return unionIDs(recs, deleted)
}

// RepackPacks returns the packs whose used blobs the plan copies, in ID
// order.
func (p *Plan) RepackPacks() []repository.ID {
	var out []repository.ID
	for _, pp := range p.Condemn {
		if pp.Repacked() {
			out = append(out, pp.ID)
		}
	}
	return out
}

// tempAge is the age from which temporary files are removed: the safety
// margin; with none, any age, but only when no other process held a lock
// while planning (its writes in progress have temporary files).
func (p *Plan) tempAge() (time.Duration, bool) {
	if m := p.st.o.SafetyMargin; m >= 0 {
		return m, true
	}
	return 0, !p.busy
}

// tempLister and tempCleaner are what a storage offers when it can list and
// remove the temporary files of writes that never finished (local storage).
type tempLister interface {
	TempFiles(olderThan time.Duration) (int, int64, error)
}

type tempCleaner interface {
	CleanTemp(olderThan time.Duration) (int, error)
}
