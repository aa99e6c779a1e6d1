package maintenance

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/coffer-backup/coffer/internal/repository"
	"github.com/coffer-backup/coffer/internal/storage"
)

type blobLoc struct {
	pack  repository.ID
	entry repository.PackEntry
}

// state is prune's reading of the repository: index files, the packs they
// name, the stored packs and the blobs the snapshots use. Planning fills it
// and execution keeps it current.
type state struct {
	r *repository.Repository
	o PruneOptions

	files  map[repository.ID]*repository.IndexFile // every index file loaded and not removed
	active map[repository.ID]repository.IndexPack  // packs of non-superseded index files
	loc    map[repository.BlobHandle][]blobLoc
	stored map[repository.ID]int64 // packs in storage, with sizes
	snaps  map[repository.ID]bool  // snapshots walked
	used   *usedSet
}

func newState(r *repository.Repository, o PruneOptions) *state {
	return &state{r: r, o: o, files: map[repository.ID]*repository.IndexFile{},
		snaps: map[repository.ID]bool{}, used: newUsedSet()}
}

// refresh reads what other processes may have added since the last read,
// in the reverse of the order a backup writes it (packs, then their index
// file, then the snapshot): snapshots, then index files, then the pack
// listing, and only then does it walk the new snapshots' trees. So every
// tree it walks is in an index file it has read, and every pack that index
// names is in its listing: a backup committing meanwhile is seen whole or
// not at all (issue 10, item 17). Any listing, index, snapshot or tree
// error is returned; a snapshot or tree that does not load, or a used blob
// in no stored pack, is ErrUnsafe.
func (s *state) refresh(ctx context.Context) error {
	roots, err := s.newSnapshots(ctx)
	if err != nil {
		return err
	}
	if err := s.loadIndex(ctx); err != nil {
		return err
	}
	if err := s.listPacks(ctx); err != nil {
		return err
	}
	if err := s.used.addTrees(ctx, s.r, roots); err != nil {
		return fmt.Errorf("%w: %w", ErrUnsafe, err)
	}
	return s.checkUsedStored()
}

// newSnapshots loads the snapshots and returns the trees of those not seen
// before. A snapshot that does not load could reference anything, so it is
// ErrUnsafe.
func (s *state) newSnapshots(ctx context.Context) ([]repository.ID, error) {
	snaps, bad, err := s.r.LoadSnapshots(ctx)
	if err != nil {
		return nil, err
	}
	if len(bad) > 0 {
		var ids []string
		for _, b := range bad {
			ids = append(ids, fmt.Sprintf("%s (%v)", b.ID.Short(), b.Err))
		}
		return nil, fmt.Errorf("%w: snapshots cannot be read: %s", ErrUnsafe, strings.Join(ids, "; "))
	}
	var roots []repository.ID
	for _, sn := range snaps {
		if !s.snaps[sn.ID] {
			s.snaps[sn.ID] = true
			roots = append(roots, sn.Tree)
		}
	}
	return roots, nil
}

// loadIndex loads index files not loaded yet and recomputes the active
// packs. Any error but a file vanishing (superseded and removed) aborts.
func (s *state) loadIndex(ctx context.Context) error {
	ids, err := s.r.ListIDs(ctx, storage.KindIndex)
	if err != nil {
		return err
	}
	for _, id := range ids {
		if s.files[id] != nil {
			continue
		}
		f, err := s.r.LoadIndexFile(ctx, id)
		if errors.Is(err, storage.ErrNotFound) {
			continue
		}
		if err != nil {
			// Never go on without it: packs only it names would look
			// unindexed, and be deleted (issue 10, item 7).
			return fmt.Errorf("%w: %w (`coffer repair index` rebuilds the index from the packs)", ErrUnsafe, err)
		}
		s.files[id] = f
	}
	s.recompute()
	return nil
}

// superseded returns the loaded index files another loaded file supersedes.
func (s *state) superseded() map[repository.ID]bool {
	out := map[repository.ID]bool{}
	for _, f := range s.files {
		for _, id := range f.Supersedes {
			out[id] = true
		}
	}
	return out
}

// supersedesList is what a new index set replacing every loaded file
// supersedes: those files and every file they supersede in turn, in ID
// order. Carrying the older IDs forward keeps each replaced file
// superseded once the files that superseded it are removed, so a storage
// that puts one back cannot revive its packs (issue 10, item 2).
func (s *state) supersedesList() []repository.ID {
	all := s.superseded()
	for id := range s.files {
		all[id] = true
	}
	return sortedIDs(all)
}

// recompute derives the active packs, blob locations and the master index
// from the loaded index files.
func (s *state) recompute() {
	superseded := s.superseded()
	s.active = map[repository.ID]repository.IndexPack{}
	var use []*repository.IndexFile
	for id, f := range s.files {
		if superseded[id] {
			continue
		}
		use = append(use, f)
		for _, pk := range f.Packs {
			if _, ok := s.active[pk.ID]; !ok {
				s.active[pk.ID] = pk
			}
		}
	}
	s.loc = map[repository.BlobHandle][]blobLoc{}
	for _, pk := range s.active {
		for _, e := range pk.Blobs {
			h := repository.BlobHandle{Type: e.Type, ID: e.ID}
			s.loc[h] = append(s.loc[h], blobLoc{pack: pk.ID, entry: e})
		}
	}
	idx := repository.NewMasterIndex()
	idx.AddFiles(use)
	s.r.UseIndex(idx)
}

func (s *state) listPacks(ctx context.Context) error {
	stored := map[repository.ID]int64{}
	err := s.r.Storage().List(ctx, storage.KindData, func(fi storage.FileInfo) error {
		id, err := repository.ParseID(fi.Name)
		if err == nil {
			stored[id] = fi.Size
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("list packs: %w", err)
	}
	s.stored = stored
	return nil
}

// checkUsedStored makes sure every used blob is in an indexed pack that
// exists; otherwise the repository is damaged and prune stops.
func (s *state) checkUsedStored() error {
	var missing []string
	n := 0
	for h := range s.used.blobs {
		ok := slices.ContainsFunc(s.loc[h], func(l blobLoc) bool {
			_, st := s.stored[l.pack]
			return st
		})
		if !ok {
			n++
			if len(missing) < 5 {
				missing = append(missing, fmt.Sprintf("%s %s", h.Type, h.ID.Short()))
			}
		}
	}
	if n > 0 {
		return fmt.Errorf("%w: %d used blobs are in no stored pack (e.g. %s)", ErrUnsafe, n, strings.Join(missing, ", "))
	}
	return nil
}

// otherLocks returns the live locks of other processes.
func (s *state) otherLocks(ctx context.Context) ([]*repository.LockInfo, error) {
	locks, err := s.r.LoadLocks(ctx)
	if err != nil {
		return nil, err
	}
	var own *repository.LockInfo
	if s.o.Lock != nil {
		i := s.o.Lock.Info()
		own = &i
	}
	now, host := s.o.Now(), repository.Hostname()
	var out []*repository.LockInfo
	for _, l := range locks {
		if isOwn(l, own) || l.Stale(now, host) {
			continue
		}
		out = append(out, l)
	}
	return out, nil
}

// hasOnlyCopy reports whether pack holds a used blob that no other existing,
// uncondemned pack holds.
func (s *state) hasOnlyCopy(pack repository.ID, condemned map[repository.ID]bool) bool {
	for _, e := range s.active[pack].Blobs {
		h := repository.BlobHandle{Type: e.Type, ID: e.ID}
		if !s.used.has(h) {
			continue
		}
		other := slices.ContainsFunc(s.loc[h], func(l blobLoc) bool {
			_, st := s.stored[l.pack]
			return st && l.pack != pack && !condemned[l.pack]
		})
		if !other {
			return true
		}
	}
	return false
}

// removeObject removes an object; one already gone counts as removed.
func removeObject(ctx context.Context, st storage.Storage, h storage.Handle) error {
	if err := st.Remove(ctx, h); err != nil && !errors.Is(err, storage.ErrNotFound) {
		return err
	}
	return nil
}

func cmpID(a, b repository.ID) int { return bytes.Compare(a[:], b[:]) }

// sortedIDs returns the keys of m in ID order.
func sortedIDs[V any](m map[repository.ID]V) []repository.ID {
	out := make([]repository.ID, 0, len(m))
	for id := range m {
		out = append(out, id)
	}
	slices.SortFunc(out, cmpID)
	return out
}
