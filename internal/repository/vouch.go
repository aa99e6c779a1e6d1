package repository

import (
	"context"
	"fmt"
	"slices"

	"github.com/coffer-backup/coffer/internal/storage"
)

// Unvouched lists the indexed packs a backup does not deduplicate
// against, and why.
type Unvouched struct {
	Missing   []ID // named by the index, not in storage
	WrongSize []ID // stored with another size than their listing implies
	Damaged   []ID // found damaged by `check --read-data` (client state)
}

// Count is the number of packs excluded.
func (u Unvouched) Count() int { return len(u.Missing) + len(u.WrongSize) + len(u.Damaged) }

// VouchIndex makes the loaded index fit for deduplication (issue 10,
// item 2): a backup must not reuse a blob it cannot vouch for. It lists
// data/ once and excludes from deduplication every indexed pack that is
// missing or whose stored size differs from the size its listing implies
// (a pack swapped for another, truncated or deleted behind the index's
// back), and every pack stateDir records as damaged (RecordDamaged). Their
// blobs stay readable where they still are; a backup that meets them
// stores them again, so it heals what it still has on disk.
func (r *Repository) VouchIndex(ctx context.Context, stateDir string) (Unvouched, error) {
	var u Unvouched
	stored := map[ID]int64{}
	err := r.st.List(ctx, storage.KindData, func(fi storage.FileInfo) error {
		if id, err := ParseID(fi.Name); err == nil {
			stored[id] = fi.Size
		}
		return nil
	})
	if err != nil {
		return u, err // names data already
	}
	var damaged map[ID]bool
	if stateDir != "" {
		st, err := loadState(StateFile(stateDir, r.id))
		if err != nil {
			return u, err
		}
		damaged = make(map[ID]bool, len(st.Damaged))
		for _, id := range st.Damaged {
			damaged[id] = true
		}
	}
	idx := r.idx.Load()
	idx.PackSizes(func(pack ID, want int64) {
		got, ok := stored[pack]
		switch {
		case !ok:
			u.Missing = append(u.Missing, pack)
		case got != want:
			u.WrongSize = append(u.WrongSize, pack)
		case damaged[pack]:
			u.Damaged = append(u.Damaged, pack)
		}
	})
	idx.Exclude(slices.Concat(u.Missing, u.WrongSize, u.Damaged))
	return u, nil
}

func (u Unvouched) String() string {
	return fmt.Sprintf("%d missing, %d of the wrong size, %d found damaged by check", len(u.Missing), len(u.WrongSize), len(u.Damaged))
}

// RecordDamaged records in stateDir's client state the packs check found
// damaged, and forgets those it has since read intact (verified), so that
// backups stop deduplicating against damaged packs (VouchIndex). The state
// is this client's: the storage cannot forge or hide the record, and
// another client learns of the damage from its own check.
func (r *Repository) RecordDamaged(stateDir string, damaged, verified []ID) error {
	if stateDir == "" || len(damaged)+len(verified) == 0 {
		return nil
	}
	return r.updateState(stateDir, func(s *SeenState) {
		set := map[ID]bool{}
		for _, id := range s.Damaged {
			set[id] = true
		}
		for _, id := range verified {
			delete(set, id)
		}
		for _, id := range damaged {
			set[id] = true
		}
		s.Damaged = make([]ID, 0, len(set))
		for id := range set {
			s.Damaged = append(s.Damaged, id)
		}
		slices.SortFunc(s.Damaged, func(a, b ID) int { return slices.Compare(a[:], b[:]) })
	})
}
