package maintenance

import (
	"slices"
	"time"

	"github.com/coffer-backup/coffer/internal/repository"
)

// RecordPlan is what prune does with one condemned record (docs/format.md
// §10): the record is finished only when it is ready; then each of its
// packs is deleted, rescued (it holds the only uncondemned copy of a used
// blob), dropped from the index (already gone) or kept condemned in a
// replacement record.
type RecordPlan struct {
	// ID is the record's ID; zero for the record a plan has yet to write.
	ID repository.ID
	// Time is when the packs were condemned.
	Time  time.Time
	Packs []repository.ID
	// Ready: no other process's live lock started before HeldBefore.
	Ready bool
	// HeldBefore is Time plus the clock-skew margin: a lock that started
	// before it may belong to a process that read the index before the
	// record existed, and holds every pack of the record.
	HeldBefore time.Time
	// BlockedBy describes the locks that hold the record.
	BlockedBy []string
	Delete    []repository.ID
	Rescue    []repository.ID
	Gone      []repository.ID
	Keep      []repository.ID
}

type outcome int

const (
	outKeep outcome = iota
	outDelete
	outGone
	outRescue
)

// recordPlan reads a record against the live locks of other processes.
func (s *state) recordPlan(rec *repository.CondemnedRecord, others []*repository.LockInfo) *RecordPlan {
	rp := &RecordPlan{ID: rec.ID, Time: rec.Time, Packs: rec.Packs, HeldBefore: rec.Time.Add(max(s.o.ClockSkew, 0))}
	for _, l := range others {
		if !l.Started.After(rp.HeldBefore) {
			rp.BlockedBy = append(rp.BlockedBy, l.String())
		}
	}
	rp.Ready = len(rp.BlockedBy) == 0
	if !rp.Ready {
		rp.Keep = slices.Clone(rec.Packs)
	}
	return rp
}

// decide says what happens to one pack of a ready record. held are packs
// of records that are not finished now, condemned the packs of every
// record; othersExist tells whether any other process holds a lock.
func (s *state) decide(pk repository.ID, rp *RecordPlan, held, condemned map[repository.ID]bool, othersExist bool, now time.Time) outcome {
	_, indexed := s.active[pk]
	_, stored := s.stored[pk]
	switch {
	case held[pk]:
		return outKeep
	case !stored:
		return outGone
	case indexed && s.hasOnlyCopy(pk, condemned):
		return outRescue
	case indexed:
		return outDelete
	case othersExist:
		// A pack no index names may be one a running backup is about to
		// index.
		return outKeep
	case s.o.SafetyMargin < 0 || now.Sub(rp.Time) >= s.o.SafetyMargin:
		return outDelete
	}
	return outKeep
}

// settle decides the packs of the ready records. A pack listed by two
// records is decided once.
func (s *state) settle(recs []*RecordPlan, othersExist bool, now time.Time) {
	held, condemned := map[repository.ID]bool{}, map[repository.ID]bool{}
	for _, rp := range recs {
		for _, pk := range rp.Packs {
			condemned[pk] = true
			if !rp.Ready {
				held[pk] = true
			}
		}
	}
	decided := map[repository.ID]outcome{}
	for _, rp := range recs {
		if !rp.Ready {
			continue
		}
		for _, pk := range rp.Packs {
			out, ok := decided[pk]
			if !ok {
				out = s.decide(pk, rp, held, condemned, othersExist, now)
				decided[pk] = out
			}
			switch out {
			case outDelete:
				rp.Delete = append(rp.Delete, pk)
			case outGone:
				rp.Gone = append(rp.Gone, pk)
			case outRescue:
				rp.Rescue = append(rp.Rescue, pk)
			default:
				rp.Keep = append(rp.Keep, pk)
			}
		}
	}
}

// restrict keeps condemned every pack of rp that allowed does not name:
// execution never deletes a pack its plan did not.
func (rp *RecordPlan) restrict(allowed map[repository.ID]bool) {
	var del []repository.ID
	for _, pk := range rp.Delete {
		if allowed[pk] {
			del = append(del, pk)
		} else {
			rp.Keep = append(rp.Keep, pk)
		}
	}
	rp.Delete = del
}

// unionIDs returns the distinct IDs that pick takes from the records, in
// ID order.
func unionIDs(recs []*RecordPlan, pick func(*RecordPlan) []repository.ID) []repository.ID {
	seen := map[repository.ID]bool{}
	for _, rp := range recs {
		for _, id := range pick(rp) {
			seen[id] = true
		}
	}
	return sortedIDs(seen)
}

func deleted(rp *RecordPlan) []repository.ID  { return rp.Delete }
func rescued(rp *RecordPlan) []repository.ID  { return rp.Rescue }
func goneFrom(rp *RecordPlan) []repository.ID { return rp.Gone }
