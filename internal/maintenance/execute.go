package maintenance

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/coffer-backup/coffer/internal/repository"
	"github.com/coffer-backup/coffer/internal/storage"
)

// ErrPlanExecuted is returned when a plan is executed a second time: it
// describes a repository that its first execution changed.
var ErrPlanExecuted = errors.New("prune plan already executed")

// execution carries out one plan and reports what it did.
type execution struct {
	p   *Plan
	s   *state
	rep *PruneReport
}

// Execute carries out the plan, in the order of docs/format.md §10: it
// finishes the ready earlier records, repacks and writes the new index,
// writes the new condemned record and finishes it when the plan says so,
// then removes superseded index files and old temporary files (and, with
// RewriteOldTerms, re-seals records and snapshots).
//
// Before deleting anything it reads the locks, snapshots, index and packs
// again and decides each pack anew: a pack is deleted only when both the
// plan and that fresh decision delete it, so a process that started or
// committed after planning can make it do less, never more. The report
// says what was done, also when an error stopped it; it equals the plan's
// Report when nothing else touched the repository meanwhile.
func (p *Plan) Execute(ctx context.Context) (*PruneReport, error) {
	if p.executed {
		return nil, ErrPlanExecuted
	}
	p.executed = true
	x := &execution{p: p, s: p.st, rep: p.baseReport(false)}
	err := x.run(ctx)
	if err == nil {
		err = x.finalReport(ctx)
	}
	if err != nil {
		// The counts are of what was done; say that the rest was not.
		x.rep.Stopped = err.Error()
		if ctx.Err() != nil {
			x.rep.Stopped = "interrupted"
		}
	}
	return x.rep, err
}

func (x *execution) run(ctx context.Context) error {
	allowed := map[repository.ID]bool{}
	for _, id := range x.p.DeletePacks() {
		allowed[id] = true
	}
	if len(x.p.Finish) > 0 {
		if err := x.finish(ctx, x.p.Finish, allowed); err != nil {
			return err
		}
	}
	if err := x.repackAndIndex(ctx); err != nil {
		return err
	}
	if err := x.condemn(ctx, allowed); err != nil {
		return err
	}
	x.removeSuperseded(ctx)
	x.cleanTemp(ctx)
	if x.s.o.RewriteOldTerms {
		return x.rewriteOldTerms(ctx)
	}
	return nil
}

// finish finishes those of targets that are still ready (docs/format.md
// §10): locks are read first, then snapshots, index and packs; then each
// pack is decided again and deleted only if allowed names it.
func (x *execution) finish(ctx context.Context, targets []*RecordPlan, allowed map[repository.ID]bool) error {
	s := x.s
	others, err := s.otherLocks(ctx)
	if err != nil {
		return err
	}
	recs, err := s.r.LoadCondemned(ctx)
	if err != nil {
		return err
	}
	want := map[repository.ID]bool{}
	for _, t := range targets {
		want[t.ID] = true
	}
	var all, ready []*RecordPlan
	for _, rec := range recs {
		rp := s.recordPlan(rec, others)
		if rp.Ready && !want[rec.ID] {
			rp.Ready, rp.Keep = false, slices.Clone(rec.Packs)
		}
		all = append(all, rp)
		if rp.Ready {
			ready = append(ready, rp)
		}
	}
	if len(ready) == 0 {
		return nil
	}
	if err := s.refresh(ctx); err != nil {
		return err
	}
	s.settle(all, len(others) > 0, s.o.Now())
	for _, rp := range ready {
		rp.restrict(allowed)
	}
	if err := x.applyRecords(ctx, ready); err != nil {
		return err
	}
	x.rep.RescuedPacks += len(unionIDs(ready, rescued))
	return nil
}

// applyRecords carries out decided records: a new index without the
// deleted and gone packs, the deletions, then a replacement record for
// what stays condemned.
func (x *execution) applyRecords(ctx context.Context, ready []*RecordPlan) error {
	s := x.s
	drop := map[repository.ID]bool{}
	for _, id := range slices.Concat(unionIDs(ready, deleted), unionIDs(ready, goneFrom)) {
		if _, ok := s.active[id]; ok {
			drop[id] = true
		}
	}
	if len(drop) > 0 {
		if err := x.writeIndex(ctx, drop, nil); err != nil {
			return err
		}
	}
	del := unionIDs(ready, deleted)
	for _, pk := range del {
		if err := removeObject(ctx, s.r.Storage(), storage.Handle{Kind: storage.KindData, Name: pk.String()}); err != nil {
			return fmt.Errorf("delete pack %s: %w", pk.Short(), err)
		}
		x.rep.DeletedPacks++
		x.rep.DeletedBytes += s.stored[pk]
		x.rep.Deleted = append(x.rep.Deleted, pk)
		delete(s.stored, pk)
	}
	if len(del) > 0 {
		s.o.Log("deleted %d packs", len(del))
	}
	for _, rp := range ready {
		if len(rp.Keep) > 0 {
			if err := s.r.SaveCondemned(ctx, &repository.CondemnedRecord{Time: rp.Time, Packs: rp.Keep}); err != nil {
				return err
			}
		}
		if err := removeObject(ctx, s.r.Storage(), storage.Handle{Kind: storage.KindCondemned, Name: rp.ID.String()}); err != nil {
			return fmt.Errorf("remove condemned record %s: %w", rp.ID.Short(), err)
		}
	}
	return nil
}

// repackAndIndex copies the used blobs of the packs to repack into new
// packs and writes an index with them and without the missing packs.
func (x *execution) repackAndIndex(ctx context.Context) error {
	newPacks, err := x.repack(ctx)
	if err != nil {
		return err
	}
	if len(newPacks) == 0 && len(x.p.DropMissing) == 0 && !x.s.o.RewriteOldTerms {
		return nil
	}
	drop := map[repository.ID]bool{}
	for _, id := range x.p.DropMissing {
		drop[id] = true
	}
	if err := x.writeIndex(ctx, drop, newPacks); err != nil {
		return err
	}
	x.rep.MissingPacks = len(x.p.DropMissing)
	return nil
}

// condemn writes the new record, stamped with the time it is written (a
// lock that started before that plus the clock skew holds it), and
// finishes it at once when the plan deletes some of its packs.
func (x *execution) condemn(ctx context.Context, allowed map[repository.ID]bool) error {
	if len(x.p.Condemn) == 0 {
		return nil
	}
	s := x.s
	rec := &repository.CondemnedRecord{Time: s.o.Now().UTC()}
	for _, pp := range x.p.Condemn {
		rec.Packs = append(rec.Packs, pp.ID)
	}
	if err := s.r.SaveCondemned(ctx, rec); err != nil {
		return fmt.Errorf("write condemned record: %w", err)
	}
	x.rep.countCondemned(x.p.Condemn)
	s.o.Log("condemned %d packs (record %s)", len(rec.Packs), rec.ID.Short())
	if len(x.p.NewRecord.Delete) == 0 {
		return nil
	}
	return x.finish(ctx, []*RecordPlan{{ID: rec.ID}}, allowed)
}

// repack copies the kept blobs of the packs to repack into new packs and
// returns them.
func (x *execution) repack(ctx context.Context) ([]repository.IndexPack, error) {
	packs := x.p.RepackPacks()
	if len(packs) == 0 {
		return nil, nil
	}
	s := x.s
	s.o.Log("repacking %d packs", len(packs))
	w := &repacker{s: s, rep: x.rep, limit: s.r.Config().PackSize}
	for _, id := range packs {
		entries := slices.Clone(x.p.keep[id])
		slices.SortFunc(entries, func(a, b repository.PackEntry) int { return cmp.Compare(a.Offset, b.Offset) })
		for _, e := range entries {
			if err := w.add(ctx, e); err != nil {
				return nil, fmt.Errorf("repack pack %s: %w", id.Short(), err)
			}
		}
		x.rep.Repacked = append(x.rep.Repacked, id)
	}
	if err := w.flush(ctx); err != nil {
		return nil, err
	}
	return w.out, nil
}

// repacker fills new packs up to the repository's pack size.
type repacker struct {
	s     *state
	rep   *PruneReport
	limit int
	pw    *repository.PackWriter
	out   []repository.IndexPack
}

func (w *repacker) add(ctx context.Context, e repository.PackEntry) error {
	data, err := w.s.r.LoadBlob(ctx, e.Type, e.ID)
	if err != nil {
		return err
	}
	if w.pw == nil {
		if w.pw, err = w.s.r.NewPackWriter(); err != nil {
			return err
		}
	}
	if err := w.pw.Add(e.Type, e.ID, data); err != nil {
		return err
	}
	if w.pw.Size() >= w.limit {
		return w.flush(ctx)
	}
	return nil
}

func (w *repacker) flush(ctx context.Context) error {
	if w.pw == nil || w.pw.Count() == 0 {
		return nil
	}
	ip, size, err := w.s.r.SavePack(ctx, w.pw)
	if err != nil {
		return err
	}
	w.out = append(w.out, ip)
	w.s.stored[ip.ID] = size
	w.rep.NewPacks++
	w.rep.NewPackBytes += size
	w.pw = nil
	return nil
}

// writeIndex stores the active packs except drop, plus add, as a set of
// index files (repository.SaveIndexSet: split at PruneOptions.indexFileBlobs, the last
// file superseding every loaded index file), then removes the superseded
// files.
func (x *execution) writeIndex(ctx context.Context, drop map[repository.ID]bool, add []repository.IndexPack) error {
	s := x.s
	old := sortedIDs(s.files)
	supersedes := s.supersedesList()
	list := make([]repository.IndexPack, 0, len(s.active)+len(add))
	for _, id := range sortedIDs(s.active) {
		if !drop[id] {
			list = append(list, s.active[id])
		}
	}
	list = append(list, add...)
	ids, files, err := s.r.SaveIndexSet(ctx, supersedes, list, s.o.indexFileBlobs)
	x.rep.IndexWritten += len(ids)
	if err != nil {
		return err
	}
	next := make(map[repository.ID]*repository.IndexFile, len(ids))
	for i, id := range ids {
		next[id] = files[i]
	}
	for _, o := range old {
		if err := removeObject(ctx, s.r.Storage(), storage.Handle{Kind: storage.KindIndex, Name: o.String()}); err != nil {
			// Readers ignore it while the new set's last file exists. It
			// stays loaded so that any later index this run writes
			// supersedes it again: were it dropped, removing the file that
			// supersedes it now would bring its stale content back.
			s.o.Log("warning: cannot remove superseded index %s: %v", o.Short(), err)
			next[o] = s.files[o]
			continue
		}
		x.rep.IndexRemoved++
	}
	s.files = next
	s.recompute()
	return nil
}

// removeSuperseded removes index files that a loaded file supersedes: left
// over when a prune stopped after writing its replacement.
func (x *execution) removeSuperseded(ctx context.Context) {
	s := x.s
	for id := range s.superseded() {
		if s.files[id] == nil {
			continue
		}
		if err := removeObject(ctx, s.r.Storage(), storage.Handle{Kind: storage.KindIndex, Name: id.String()}); err != nil {
			s.o.Log("warning: cannot remove superseded index %s: %v", id.Short(), err)
			continue
		}
		delete(s.files, id)
		x.rep.IndexRemoved++
	}
}

// cleanTemp removes the temporary files of writes that never finished
// (kill -9), when the storage can, and older than the plan's age. A failure
// is a warning: they hold nothing a reader uses.
func (x *execution) cleanTemp(ctx context.Context) {
	c, ok := storage.As[tempCleaner](x.s.r.Storage())
	if !ok {
		return
	}
	age, ok := x.p.tempAge()
	if !ok {
		return
	}
	if err := ctx.Err(); err != nil {
		return
	}
	n, err := c.CleanTemp(age)
	x.rep.TempFilesRemoved += n
	if err != nil {
		x.s.o.Log("warning: cannot remove temporary files: %v", err)
	}
}

// finalReport adds what is left: the records still pending and what holds
// them.
func (x *execution) finalReport(ctx context.Context) error {
	s := x.s
	recs, err := s.r.LoadCondemned(ctx)
	if err != nil {
		return err
	}
	others, err := s.otherLocks(ctx)
	if err != nil {
		return err
	}
	var waiting []*RecordPlan
	for _, rec := range recs {
		rp := s.recordPlan(rec, others)
		rp.Keep = rec.Packs
		waiting = append(waiting, rp)
	}
	x.rep.setWaiting(s, waiting)
	x.rep.Snapshots, x.rep.UsedBlobs = len(s.snaps), len(s.used.blobs)
	return nil
}
