package replicate

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/coffer-backup/coffer/internal/atrest"
	"github.com/coffer-backup/coffer/internal/serverdb"
	"github.com/coffer-backup/coffer/internal/storage"
)

// repoSync brings one repository to the target.
type repoSync struct {
	p    *pass
	k    RepoKey
	tr   targetRepo // nil when the target has no copy
	objs map[storage.Handle]objectInfo
	src  *atrest.Storage

	mu      sync.Mutex // guards have, recs and unsaved while workers run
	have    map[storage.Handle]held
	recs    map[storage.Handle]serverdb.ReplicaObject
	unsaved []serverdb.ReplicaObject // verified, not yet in the DB
}

// recordBatch is how many verified copies are recorded in one
// transaction: a kill forgets at most this many records, whose copies
// the next pass finds at the target, verifies and records.
const recordBatch = 64

// kindOrder puts the config first, so the copy opens as a repository from
// its first object on, and data before the index and snapshots that
// reference it.
func kindOrder(k storage.Kind) int {
	for i, x := range storage.Kinds {
		if x == k {
			return i
		}
	}
	return len(storage.Kinds)
}

// lookup returns what the DB records of h and what the target listed.
func (rs *repoSync) lookup(h storage.Handle) (serverdb.ReplicaObject, bool, held, bool) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	rec, recorded := rs.recs[h]
	got, there := rs.have[h]
	return rec, recorded, got, there
}

func (rs *repoSync) sync(ctx context.Context) error {
	src, err := rs.p.opts.Source.Open(ctx, rs.k)
	if err != nil {
		return err
	}
	defer func() { _ = src.Close() }()
	rs.src = src
	hs := make([]storage.Handle, 0, len(rs.objs))
	for h := range rs.objs {
		hs = append(hs, h)
	}
	sort.Slice(hs, func(i, j int) bool {
		if a, b := kindOrder(hs[i].Kind), kindOrder(hs[j].Kind); a != b {
			return a < b
		}
		return hs[i].Name < hs[j].Name
	})
	// One kind at a time, its objects in parallel: every pack is at the
	// target before an index that names it is sent.
	for start := 0; start < len(hs); {
		end := start + 1
		for end < len(hs) && hs[end].Kind == hs[start].Kind {
			end++
		}
		err := rs.each(ctx, hs[start:end], func(ctx context.Context, h storage.Handle) error {
			return rs.object(ctx, h, rs.objs[h])
		})
		// What was verified is recorded even when ctx ended the phase.
		if ferr := rs.flush(context.WithoutCancel(ctx)); ferr != nil {
			return ferr
		}
		if err != nil {
			return err
		}
		start = end
	}
	if rs.p.opts.ReadBack {
		if err := rs.each(ctx, hs, rs.readBack); err != nil {
			return err
		}
	}
	if err := rs.extend(ctx); err != nil {
		return err
	}
	return rs.deletions(ctx)
}

// each runs fn on every handle, as many at once as the pass's parallel
// setting allows; an object's error is reported as its failure. It
// returns ctx's error once ctx is done.
func (rs *repoSync) each(ctx context.Context, hs []storage.Handle, fn func(context.Context, storage.Handle) error) error {
	var g errgroup.Group
	g.SetLimit(rs.p.parallel)
	for _, h := range hs {
		if ctx.Err() != nil {
			break
		}
		g.Go(func() error {
			if err := fn(ctx, h); err != nil && ctx.Err() == nil {
				rs.p.fail(rs.k, h.String(), err)
			}
			return nil
		})
	}
	_ = g.Wait()
	return ctx.Err()
}

// object brings one object over, or checks the copy the target holds.
func (rs *repoSync) object(ctx context.Context, h storage.Handle, info objectInfo) error {
	rec, recorded, got, there := rs.lookup(h)
	switch {
	case there && recorded:
		if got.size != rec.Size || got.tag != "" && got.tag != rec.Tag {
			return fmt.Errorf("%w: it lists %d bytes, tag %q; it acknowledged %d bytes, tag %q", ErrMismatch, got.size, got.tag, rec.Size, rec.Tag)
		}
		if info.size != rec.Size {
			return fmt.Errorf("%w: the primary's object has %d bytes, the copy %d", ErrMismatch, info.size, rec.Size)
		}
		if !rec.DeletedAt.IsZero() {
			rec.DeletedAt = time.Time{}
			return rs.put(ctx, h, rec)
		}
		return nil
	case there:
		return rs.adopt(ctx, h, info, nil)
	}
	if !recorded && destructive(h.Kind) && rs.p.now().Sub(info.mtime) < rs.p.cfg.KeepDeleted {
		rs.p.count(func(r *Report) { r.Held++ })
		return nil
	}
	if recorded {
		rs.p.log.Warn("the target no longer holds an object it acknowledged; sending it again", "target", rs.p.cfg.Name, "repo", rs.k.String(), "object", h.String())
	}
	return rs.send(ctx, h, info)
}

// destructive reports whether objects of kind record deletions: a
// forgotten snapshot, packs a prune condemned. Readers honour them, so
// they reach the target only after keep-deleted, as deletions do.
func destructive(k storage.Kind) bool {
	return k == storage.KindForgets || k == storage.KindCondemned
}

// loader returns the object's content, read once.
func (rs *repoSync) loader(ctx context.Context, h storage.Handle, data []byte) func() ([]byte, error) {
	return func() ([]byte, error) {
		if data != nil {
			return data, nil
		}
		b, err := rs.src.Load(ctx, h, 0, -1)
		if err != nil {
			return nil, fmt.Errorf("read at the primary: %w", err)
		}
		data = b
		return b, nil
	}
}

// adopt verifies a copy found at the target (left by a killed pass, or
// seeded), extends its retention if the target locks and it is due, and
// records it.
func (rs *repoSync) adopt(ctx context.Context, h storage.Handle, info objectInfo, data []byte) error {
	o, err := rs.src.Open(ctx, h)
	if err != nil {
		return fmt.Errorf("read at the primary: %w", err)
	}
	sum := o.ContentSHA256()
	sha := hex.EncodeToString(sum[:])
	want, err := rs.tr.expect(sha, rs.loader(ctx, h, data))
	if err != nil {
		return err
	}
	st, err := rs.verify(ctx, h, info.size, want)
	if err != nil {
		return err
	}
	until := st.retainUntil
	if rs.p.lockFor > 0 && until.Before(rs.p.now().Add(rs.p.renewBefore())) {
		if until, err = rs.retain(ctx, h); err != nil {
			return err
		}
	}
	rs.p.count(func(r *Report) { r.Adopted++ })
	return rs.record(ctx, h, info.size, sha, want, until)
}

// retain extends h's retention to now+lock and returns the new date.
func (rs *repoSync) retain(ctx context.Context, h storage.Handle) (time.Time, error) {
	until := rs.p.now().Add(rs.p.lockFor).UTC().Truncate(time.Second)
	if err := rs.tr.retain(ctx, h, until); err != nil {
		return time.Time{}, fmt.Errorf("extend the object lock: %w", err)
	}
	return until, nil
}

// verify compares what the target reports of h with what it must hold,
// and returns the report.
func (rs *repoSync) verify(ctx context.Context, h storage.Handle, size int64, want string) (stat, error) {
	st, err := rs.tr.stat(ctx, h)
	if err != nil {
		return st, fmt.Errorf("verify at the target: %w", err)
	}
	if st.size != size || st.tag != want {
		return st, fmt.Errorf("%w: it reports %d bytes, tag %q; the primary's object has %d bytes, tag %q", ErrMismatch, st.size, st.tag, size, want)
	}
	return st, nil
}

// send copies an object, verifies the copy (and its lock) and records it.
func (rs *repoSync) send(ctx context.Context, h storage.Handle, info objectInfo) error {
	data, err := rs.loader(ctx, h, nil)()
	if err != nil {
		return err
	}
	if int64(len(data)) != info.size {
		return fmt.Errorf("read at the primary: %d bytes, its file holds %d", len(data), info.size)
	}
	// The target locks the copy until at least this, computed before it
	// saves (it rounds up to the second).
	lockedUntil := rs.p.now().Add(rs.p.lockFor).UTC().Truncate(time.Second)
	err = rs.tr.save(ctx, h, data, rs.p.th)
	if errors.Is(err, storage.ErrExists) {
		return rs.adopt(ctx, h, info, data)
	}
	if err != nil {
		return fmt.Errorf("copy: %w", err)
	}
	sha := sha256Hex(data)
	want, err := rs.tr.expect(sha, rs.loader(ctx, h, data))
	if err != nil {
		return err
	}
	st, err := rs.verify(ctx, h, info.size, want)
	if err != nil {
		return err
	}
	if rs.p.lockFor > 0 && st.retainUntil.Before(lockedUntil) {
		return fmt.Errorf("the target did not lock the copy: it reports retention until %v, want %s or later", fmtTime(st.retainUntil), lockedUntil.Format(time.RFC3339))
	}
	rs.p.count(func(r *Report) { r.Sent++; r.SentBytes += info.size })
	return rs.record(ctx, h, info.size, sha, want, st.retainUntil)
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "none"
	}
	return t.Format(time.RFC3339)
}

// record notes a verified copy; it reaches the DB in a batch (flush).
func (rs *repoSync) record(ctx context.Context, h storage.Handle, size int64, sha, tag string, retainUntil time.Time) error {
	o := serverdb.ReplicaObject{Target: rs.p.cfg.Name, Client: rs.k.Client, Repo: rs.k.Repo, Kind: string(h.Kind), Name: h.Name,
		Size: size, SHA256: sha, Tag: tag, ReplicatedAt: rs.p.now(), RetainUntil: retainUntil}
	rs.mu.Lock()
	rs.recs[h] = o
	rs.have[h] = held{size: size, tag: tag}
	rs.unsaved = append(rs.unsaved, o)
	full := len(rs.unsaved) >= recordBatch
	rs.mu.Unlock()
	if full {
		return rs.flush(ctx)
	}
	return nil
}

// flush records the verified copies not yet in the DB.
func (rs *repoSync) flush(ctx context.Context) error {
	rs.mu.Lock()
	batch := rs.unsaved
	rs.unsaved = nil
	rs.mu.Unlock()
	return rs.p.opts.DB.PutReplicaObjects(ctx, batch)
}

// put updates the record of h.
func (rs *repoSync) put(ctx context.Context, h storage.Handle, rec serverdb.ReplicaObject) error {
	if err := rs.p.opts.DB.PutReplicaObject(ctx, rec); err != nil {
		return err
	}
	rs.mu.Lock()
	rs.recs[h] = rec
	rs.mu.Unlock()
	return nil
}

// readBack reads a recorded copy back from the target and compares its
// content with the hash the primary's object has.
func (rs *repoSync) readBack(ctx context.Context, h storage.Handle) error {
	rec, ok, _, _ := rs.lookup(h)
	if !ok {
		return nil
	}
	b, err := rs.tr.load(ctx, h)
	switch {
	case err != nil:
		return fmt.Errorf("read back from the target: %w", err)
	case sha256Hex(b) != rec.SHA256:
		return fmt.Errorf("%w: read back, its content's SHA-256 is %s; the primary's is %s", ErrMismatch, sha256Hex(b), rec.SHA256)
	}
	rs.p.count(func(r *Report) { r.Verified++ })
	return nil
}

// extendBatch is how many extended retentions are recorded in one
// transaction.
const extendBatch = 500

// extend moves the retention of every copy whose primary object still
// exists, and whose retention ends within the renewal margin, to
// now+lock, in parallel, and records the new dates in batches.
func (rs *repoSync) extend(ctx context.Context) error {
	if rs.p.lockFor == 0 {
		return nil
	}
	due := rs.p.now().Add(rs.p.renewBefore())
	var hs []storage.Handle
	for h, rec := range rs.recs {
		if _, live := rs.objs[h]; live && rec.DeletedAt.IsZero() && rec.RetainUntil.Before(due) {
			hs = append(hs, h)
		}
	}
	sort.Slice(hs, func(i, j int) bool { return hs[i].String() < hs[j].String() })
	for start := 0; start < len(hs); start += extendBatch {
		batch := hs[start:min(start+extendBatch, len(hs))]
		var mu sync.Mutex
		var done []serverdb.ReplicaObject
		err := rs.each(ctx, batch, func(ctx context.Context, h storage.Handle) error {
			until, err := rs.retain(ctx, h)
			if err != nil {
				return err
			}
			rec, _, _, _ := rs.lookup(h)
			rec.RetainUntil = until
			mu.Lock()
			done = append(done, rec)
			mu.Unlock()
			return nil
		})
		// What was extended is recorded even when ctx ended the batch.
		if perr := rs.p.opts.DB.PutReplicaObjects(context.WithoutCancel(ctx), done); perr != nil {
			return perr
		}
		rs.mu.Lock()
		for _, rec := range done {
			rs.recs[storage.Handle{Kind: storage.Kind(rec.Kind), Name: rec.Name}] = rec
		}
		rs.mu.Unlock()
		rs.p.count(func(r *Report) { r.Extended += int64(len(done)) })
		if err != nil {
			return err
		}
	}
	return nil
}

// deletions applies the primary's deletions to the target once they are
// older than keep-deleted and their object lock has ended; until then the
// target keeps the copies.
func (rs *repoSync) deletions(ctx context.Context) error {
	now := rs.p.now()
	for h, rec := range rs.recs {
		if _, ok := rs.objs[h]; ok {
			continue
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if rec.DeletedAt.IsZero() {
			rec.DeletedAt = now
			if err := rs.p.opts.DB.PutReplicaObject(ctx, rec); err != nil {
				return err
			}
			rs.recs[h] = rec
		}
		if now.Sub(rec.DeletedAt) < rs.p.cfg.KeepDeleted {
			rs.p.rep.Kept++
			continue
		}
		if rec.RetainUntil.After(now) {
			rs.p.rep.Locked++
			continue
		}
		if err := rs.removeCopy(ctx, h); err != nil {
			if err := rs.refused(ctx, h, rec, err); err != nil {
				rs.p.fail(rs.k, h.String(), fmt.Errorf("delete at the target: %w", err))
			}
			continue
		}
		if err := rs.p.opts.DB.RemoveReplicaObject(ctx, rec); err != nil {
			return err
		}
		rs.p.rep.Deleted++
	}
	return nil
}

// refused handles a deletion the target refused: a copy an object lock
// still holds (by the target's clock, or extended behind the pass's back)
// has its date recorded and waits for it; a coffer target that does not
// let the primary delete keeps the copy. Other errors are returned.
func (rs *repoSync) refused(ctx context.Context, h storage.Handle, rec serverdb.ReplicaObject, err error) error {
	if !errors.Is(err, storage.ErrForbidden) {
		return err
	}
	if st, serr := rs.tr.stat(ctx, h); serr == nil && !st.retainUntil.IsZero() {
		rec.RetainUntil = st.retainUntil
		rs.p.rep.Locked++
		rs.p.log.Info("the target's object lock holds a copy the primary deleted; it is deleted once the lock ends",
			"target", rs.p.cfg.Name, "repo", rs.k.String(), "object", h.String(), "until", st.retainUntil)
		return rs.p.opts.DB.PutReplicaObject(ctx, rec)
	}
	rs.p.rep.Kept++
	rs.p.log.Info("the target refuses to delete an object the primary deleted; it keeps it", "target", rs.p.cfg.Name, "repo", rs.k.String(), "object", h.String())
	return nil
}

func (rs *repoSync) removeCopy(ctx context.Context, h storage.Handle) error {
	if rs.tr == nil {
		return nil
	}
	if _, ok := rs.have[h]; !ok {
		return nil
	}
	err := rs.tr.remove(ctx, h)
	if errors.Is(err, storage.ErrNotFound) {
		return nil
	}
	return err
}
