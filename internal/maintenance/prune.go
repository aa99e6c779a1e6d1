package maintenance

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/coffer-backup/coffer/internal/repository"
	"github.com/coffer-backup/coffer/internal/storage"
)

// Sentinel errors of prune.
var (
	// ErrPruneRunning: another prune holds a lock. It wraps
	// repository.ErrLocked, so the CLI exits with the "locked" code.
	ErrPruneRunning = fmt.Errorf("%w: another prune is running", repository.ErrLocked)
	// ErrUnsafe: prune found something it cannot reason about (a snapshot
	// that does not load, a used blob that no existing pack holds) and
	// stopped before deleting anything. Run `coffer check`.
	ErrUnsafe = errors.New("prune refused: the repository needs checking")
)

// PruneLockOperation is the operation name of prune's lock.
const PruneLockOperation = "prune"

// Defaults of PruneOptions.
const (
	DefaultSafetyMargin = time.Hour
	DefaultClockSkew    = 10 * time.Minute
)

// MaxUnused is how much unused data prune tolerates in packs that still hold
// used blobs before it repacks them: a percentage of the repository size
// after pruning, an absolute byte count, or unlimited.
type MaxUnused struct {
	Percent   float64
	Bytes     int64
	Unlimited bool
	isBytes   bool
}

// DefaultMaxUnused tolerates 10% unused data.
var DefaultMaxUnused = MaxUnused{Percent: 10}

// ParseMaxUnused reads "10%", "unlimited", or a size such as "0", "500M",
// "2G" (k, m, g, t suffixes, powers of 1024).
func ParseMaxUnused(s string) (MaxUnused, error) {
	s = strings.TrimSpace(s)
	bad := func() (MaxUnused, error) {
		return MaxUnused{}, fmt.Errorf("invalid --max-unused %q: want a percentage (10%%), a size (500M) or \"unlimited\"", s)
	}
	switch {
	case s == "unlimited":
		return MaxUnused{Unlimited: true}, nil
	case strings.HasSuffix(s, "%"):
		p, err := strconv.ParseFloat(strings.TrimSuffix(s, "%"), 64)
		if err != nil || p < 0 || p > 100 || math.IsNaN(p) {
			return bad()
		}
		if p == 100 {
			return MaxUnused{Unlimited: true}, nil
		}
		return MaxUnused{Percent: p}, nil
	case s == "":
		return bad()
	}
	mult := int64(1)
	switch s[len(s)-1] {
	case 'k', 'K':
		mult = 1 << 10
	case 'm', 'M':
		mult = 1 << 20
	case 'g', 'G':
		mult = 1 << 30
	case 't', 'T':
		mult = 1 << 40
	}
	num := s
	if mult > 1 {
		num = s[:len(s)-1]
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 0 || n > math.MaxInt64/mult {
		return bad()
	}
	return MaxUnused{Bytes: n * mult, isBytes: true}, nil
}

// Limit is the unused byte count tolerated beside used bytes of live data.
func (m MaxUnused) Limit(used int64) int64 {
	switch {
	case m.Unlimited:
		return math.MaxInt64
	case m.isBytes:
		return m.Bytes
	}
	l := m.Percent / (100 - m.Percent) * float64(used)
	if l >= math.MaxInt64 {
		return math.MaxInt64
	}
	return int64(l)
}

func (m MaxUnused) String() string {
	switch {
	case m.Unlimited:
		return "unlimited"
	case m.isBytes:
		return strconv.FormatInt(m.Bytes, 10)
	}
	return strconv.FormatFloat(m.Percent, 'f', -1, 64) + "%"
}

// PruneOptions configure Prune. The zero value (plus a MaxUnused) works.
type PruneOptions struct {
	DryRun bool
	// MaxUnused: see MaxUnused; the zero value repacks every pack with any
	// unused blob.
	MaxUnused MaxUnused
	// SafetyMargin: a pack no index names is deleted only when it has been
	// condemned at least this long and no other lock exists. Zero means
	// DefaultSafetyMargin; use a negative value for none (tests).
	SafetyMargin time.Duration
	// ClockSkew is added to a condemned record's time when comparing it
	// with lock start times, to cover clocks of other hosts and the time it
	// took to store the record. Zero means DefaultClockSkew; negative: none.
	ClockSkew time.Duration
	// RewriteOldTerms moves everything sealed with an older key term to
	// the current one: packs are repacked, the index rewritten, forget and
	// condemned records re-sealed, and snapshots replaced under new IDs
	// (repository.ReplaceSnapshots); the report lists what is left. The
	// caller should hold an exclusive lock.
	RewriteOldTerms bool
	// Lock is prune's own lock (not counted as another process's); nil
	// when the caller holds none.
	Lock *repository.HeldLock
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
	// Log receives progress messages; nil discards them.
	Log func(format string, args ...any)
}

// PruneReport says what Prune did (or, with DryRun, would do).
type PruneReport struct {
	DryRun         bool     `json:"dry_run"`
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

// indexSplitBlobs is how many blobs one index file written by prune holds
// at most; a variable so that tests split small repositories.
var indexSplitBlobs = repository.DefaultIndexFileBlobs

type blobLoc struct {
	pack  repository.ID
	entry repository.PackEntry
}

type pruner struct {
	r   *repository.Repository
	o   PruneOptions
	rep *PruneReport

	files  map[repository.ID]*repository.IndexFile // every index file loaded and not removed
	active map[repository.ID]repository.IndexPack  // packs of non-superseded index files
	loc    map[repository.BlobHandle][]blobLoc
	stored map[repository.ID]int64 // packs in storage, with sizes
	snaps  map[repository.ID]bool  // snapshots walked
	used   *usedSet
}

// AcquireLock takes prune's lock and refuses when another prune holds one
// (two prunes could each delete what the other just rescued).
func AcquireLock(ctx context.Context, r *repository.Repository, exclusive bool) (*repository.HeldLock, error) {
	l, err := r.Lock(ctx, PruneLockOperation, exclusive)
	if err != nil {
		return nil, err
	}
	locks, err := r.LoadLocks(ctx)
	if err != nil {
		_ = l.Unlock(ctx)
		return nil, err
	}
	now, host := time.Now(), repository.Hostname()
	own := l.Info()
	for _, x := range locks {
		if x.Operation == PruneLockOperation && !isOwn(x, &own) && !x.Stale(now, host) {
			_ = l.Unlock(ctx)
			return nil, fmt.Errorf("%w: %s", ErrPruneRunning, x)
		}
	}
	return l, nil
}

func isOwn(l *repository.LockInfo, own *repository.LockInfo) bool {
	if own == nil {
		return false
	}
	return l.ID == own.ID || (l.Host == own.Host && l.PID == own.PID && l.Operation == own.Operation && l.Started.Equal(own.Started))
}

// Prune removes data no snapshot references, in two phases (docs/format.md
// §10). It first finishes earlier condemned records whose packs may now go,
// then condemns newly unused packs (repacking the used blobs of packs with
// too much unused data first), then deletes at once whatever no other
// process's lock can still be relying on. Any listing, index, snapshot or
// tree error aborts it before anything is deleted.
func Prune(ctx context.Context, r *repository.Repository, o PruneOptions) (*PruneReport, error) {
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
	if o.RewriteOldTerms && o.Lock != nil && !o.Lock.Info().Exclusive {
		return nil, errors.New("--rewrite-old-terms needs an exclusive lock")
	}
	p := &pruner{r: r, o: o, rep: &PruneReport{DryRun: o.DryRun}, files: map[repository.ID]*repository.IndexFile{},
		snaps: map[repository.ID]bool{}, used: newUsedSet()}
	o.Log("loading index")
	if err := p.loadIndex(ctx); err != nil {
		return nil, err
	}
	if err := p.listPacks(ctx); err != nil {
		return nil, err
	}
	for _, sz := range p.stored {
		p.rep.PacksBefore++
		p.rep.BytesBefore += sz
	}
	o.Log("finding used data")
	if err := p.refreshSnapshots(ctx); err != nil {
		return nil, err
	}
	if err := p.checkUsedStored(); err != nil {
		return nil, err
	}
	if err := p.phaseTwo(ctx); err != nil {
		return p.rep, err
	}
	condemned, err := p.phaseOne(ctx)
	if err != nil {
		return p.rep, err
	}
	if condemned && !o.DryRun {
		if err := p.phaseTwo(ctx); err != nil {
			return p.rep, err
		}
	}
	if !o.DryRun {
		p.removeSuperseded(ctx)
	}
	if o.RewriteOldTerms {
		if err := p.rewriteOldTerms(ctx); err != nil {
			return p.rep, err
		}
	}
	recs, err := r.LoadCondemned(ctx)
	if err != nil {
		return p.rep, err
	}
	p.rep.PendingRecords = len(recs)
	p.rep.Snapshots = len(p.snaps)
	p.rep.UsedBlobs = len(p.used.blobs)
	return p.rep, nil
}

// loadIndex loads index files not loaded yet and recomputes the active
// packs. Any error but a file vanishing (superseded and removed) aborts.
func (p *pruner) loadIndex(ctx context.Context) error {
	ids, err := p.r.ListIDs(ctx, storage.KindIndex)
	if err != nil {
		return err
	}
	for _, id := range ids {
		if p.files[id] != nil {
			continue
		}
		f, err := p.r.LoadIndexFile(ctx, id)
		if errors.Is(err, storage.ErrNotFound) {
			continue
		}
		if err != nil {
			return fmt.Errorf("%w: %w", ErrUnsafe, err)
		}
		p.files[id] = f
	}
	p.recompute()
	return nil
}

// recompute derives the active packs, blob locations and the master index
// from the loaded index files.
func (p *pruner) recompute() {
	superseded := map[repository.ID]bool{}
	for _, f := range p.files {
		for _, s := range f.Supersedes {
			superseded[s] = true
		}
	}
	p.active = map[repository.ID]repository.IndexPack{}
	var use []*repository.IndexFile
	for id, f := range p.files {
		if superseded[id] {
			continue
		}
		use = append(use, f)
		for _, pk := range f.Packs {
			if _, ok := p.active[pk.ID]; !ok {
				p.active[pk.ID] = pk
			}
		}
	}
	p.loc = map[repository.BlobHandle][]blobLoc{}
	for _, pk := range p.active {
		for _, e := range pk.Blobs {
			h := repository.BlobHandle{Type: e.Type, ID: e.ID}
			p.loc[h] = append(p.loc[h], blobLoc{pack: pk.ID, entry: e})
		}
	}
	idx := repository.NewMasterIndex()
	idx.AddFiles(use)
	p.r.UseIndex(idx)
}

func (p *pruner) listPacks(ctx context.Context) error {
	stored := map[repository.ID]int64{}
	err := p.r.Storage().List(ctx, storage.KindData, func(fi storage.FileInfo) error {
		id, err := repository.ParseID(fi.Name)
		if err == nil {
			stored[id] = fi.Size
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("list packs: %w", err)
	}
	p.stored = stored
	return nil
}

// refreshSnapshots walks snapshots not walked yet. A snapshot that does not
// load could reference anything, so it aborts prune.
func (p *pruner) refreshSnapshots(ctx context.Context) error {
	snaps, bad, err := p.r.LoadSnapshots(ctx)
	if err != nil {
		return err
	}
	if len(bad) > 0 {
		var ids []string
		for _, b := range bad {
			ids = append(ids, fmt.Sprintf("%s (%v)", b.ID.Short(), b.Err))
		}
		return fmt.Errorf("%w: snapshots cannot be read: %s", ErrUnsafe, strings.Join(ids, "; "))
	}
	var roots []repository.ID
	for _, s := range snaps {
		if !p.snaps[s.ID] {
			p.snaps[s.ID] = true
			roots = append(roots, s.Tree)
		}
	}
	if err := p.used.addTrees(ctx, p.r, roots); err != nil {
		return fmt.Errorf("%w: %w", ErrUnsafe, err)
	}
	return nil
}

// checkUsedStored makes sure every used blob is in an indexed pack that
// exists; otherwise the repository is damaged and prune stops.
func (p *pruner) checkUsedStored() error {
	var missing []string
	n := 0
	for h := range p.used.blobs {
		ok := false
		for _, l := range p.loc[h] {
			if _, s := p.stored[l.pack]; s {
				ok = true
				break
			}
		}
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
func (p *pruner) otherLocks(ctx context.Context) ([]*repository.LockInfo, error) {
	locks, err := p.r.LoadLocks(ctx)
	if err != nil {
		return nil, err
	}
	var own *repository.LockInfo
	if p.o.Lock != nil {
		i := p.o.Lock.Info()
		own = &i
	}
	now, host := p.o.Now(), repository.Hostname()
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
func (p *pruner) hasOnlyCopy(pack repository.ID, condemned map[repository.ID]bool) bool {
	for _, e := range p.active[pack].Blobs {
		h := repository.BlobHandle{Type: e.Type, ID: e.ID}
		if !p.used.has(h) {
			continue
		}
		other := false
		for _, l := range p.loc[h] {
			if l.pack == pack || condemned[l.pack] {
				continue
			}
			if _, ok := p.stored[l.pack]; ok {
				other = true
				break
			}
		}
		if !other {
			return true
		}
	}
	return false
}

type outcome int

const (
	outDefer outcome = iota
	outDelete
	outGone
	outRescue
)

// phaseTwo finishes condemned records that no other lock predates: their
// packs are deleted when still unused (indexed ones) or old enough with no
// other lock at all (unindexed ones); packs that became used again are
// rescued; the rest stay condemned in a rewritten record.
func (p *pruner) phaseTwo(ctx context.Context) error {
	// Order matters: locks first, then snapshots and index. A process whose
	// lock is gone wrote its index and snapshot before unlocking.
	others, err := p.otherLocks(ctx)
	if err != nil {
		return err
	}
	recs, err := p.r.LoadCondemned(ctx)
	if err != nil {
		return err
	}
	if len(recs) == 0 {
		return nil
	}
	now := p.o.Now()
	skew := max(p.o.ClockSkew, 0)
	var ready []*repository.CondemnedRecord
	blockedPacks := map[repository.ID]bool{}
	allCondemned := map[repository.ID]bool{}
	p.rep.BlockedByLocks = nil
	for _, rec := range recs {
		for _, pk := range rec.Packs {
			allCondemned[pk] = true
		}
		var blockers []string
		for _, l := range others {
			if !l.Started.After(rec.Time.Add(skew)) {
				blockers = append(blockers, l.String())
			}
		}
		if len(blockers) > 0 {
			for _, pk := range rec.Packs {
				blockedPacks[pk] = true
			}
			p.rep.BlockedByLocks = append(p.rep.BlockedByLocks, blockers...)
			continue
		}
		ready = append(ready, rec)
	}
	slices.Sort(p.rep.BlockedByLocks)
	p.rep.BlockedByLocks = slices.Compact(p.rep.BlockedByLocks)
	if len(ready) == 0 {
		p.countDeferred(recs)
		return nil
	}
	if err := p.refreshSnapshots(ctx); err != nil {
		return err
	}
	if err := p.loadIndex(ctx); err != nil {
		return err
	}
	if err := p.listPacks(ctx); err != nil {
		return err
	}
	if err := p.checkUsedStored(); err != nil {
		return err
	}
	decided := map[repository.ID]outcome{}
	for _, rec := range ready {
		for _, pk := range rec.Packs {
			if _, ok := decided[pk]; ok {
				continue
			}
			_, indexed := p.active[pk]
			_, stored := p.stored[pk]
			switch {
			case blockedPacks[pk]:
				decided[pk] = outDefer
			case !stored:
				decided[pk] = outGone
			case indexed && p.hasOnlyCopy(pk, allCondemned):
				decided[pk] = outRescue
			case indexed:
				decided[pk] = outDelete
			case len(others) == 0 && p.o.SafetyMargin >= 0 && now.Sub(rec.Time) >= p.o.SafetyMargin:
				decided[pk] = outDelete
			case len(others) == 0 && p.o.SafetyMargin < 0:
				decided[pk] = outDelete
			default:
				decided[pk] = outDefer
			}
		}
	}
	var drop = map[repository.ID]bool{}
	var del []repository.ID
	for pk, out := range decided {
		switch out {
		case outDelete:
			del = append(del, pk)
			if _, ok := p.active[pk]; ok {
				drop[pk] = true
			}
		case outGone:
			if _, ok := p.active[pk]; ok {
				drop[pk] = true
			}
		case outRescue:
			p.rep.RescuedPacks++
		}
	}
	slices.SortFunc(del, cmpID)
	if p.o.DryRun {
		for _, pk := range del {
			p.rep.DeletedPacks++
			p.rep.DeletedBytes += p.stored[pk]
		}
		p.countDeferred(recs)
		return nil
	}
	if len(drop) > 0 {
		if err := p.writeIndex(ctx, drop, nil); err != nil {
			return err
		}
	}
	for _, pk := range del {
		err := p.r.Storage().Remove(ctx, storage.Handle{Kind: storage.KindData, Name: pk.String()})
		if err != nil && !errors.Is(err, storage.ErrNotFound) {
			return fmt.Errorf("delete pack %s: %w", pk.Short(), err)
		}
		p.rep.DeletedPacks++
		p.rep.DeletedBytes += p.stored[pk]
		delete(p.stored, pk)
	}
	if len(del) > 0 {
		p.o.Log("deleted %d packs", len(del))
	}
	for _, rec := range ready {
		var keep []repository.ID
		for _, pk := range rec.Packs {
			if decided[pk] == outDefer {
				keep = append(keep, pk)
			}
		}
		if len(keep) > 0 {
			if err := p.r.SaveCondemned(ctx, &repository.CondemnedRecord{Time: rec.Time, Packs: keep}); err != nil {
				return err
			}
		}
		err := p.r.Storage().Remove(ctx, storage.Handle{Kind: storage.KindCondemned, Name: rec.ID.String()})
		if err != nil && !errors.Is(err, storage.ErrNotFound) {
			return fmt.Errorf("remove condemned record %s: %w", rec.ID.Short(), err)
		}
	}
	recs, err = p.r.LoadCondemned(ctx)
	if err != nil {
		return err
	}
	p.countDeferred(recs)
	return nil
}

func (p *pruner) countDeferred(recs []*repository.CondemnedRecord) {
	seen := map[repository.ID]bool{}
	for _, r := range recs {
		for _, pk := range r.Packs {
			seen[pk] = true
		}
	}
	p.rep.DeferredPacks = len(seen)
}

func cmpID(a, b repository.ID) int { return bytes.Compare(a[:], b[:]) }

// writeIndex stores the active packs except drop, plus add, as a set of
// index files (repository.SaveIndexSet: split at indexSplitBlobs, the last
// file superseding every loaded index file), then removes the superseded
// files.
func (p *pruner) writeIndex(ctx context.Context, drop map[repository.ID]bool, add []repository.IndexPack) error {
	old := make([]repository.ID, 0, len(p.files))
	for id := range p.files {
		old = append(old, id)
	}
	slices.SortFunc(old, cmpID)
	packs := make([]repository.ID, 0, len(p.active))
	for id := range p.active {
		if !drop[id] {
			packs = append(packs, id)
		}
	}
	slices.SortFunc(packs, cmpID)
	list := make([]repository.IndexPack, 0, len(packs)+len(add))
	for _, id := range packs {
		list = append(list, p.active[id])
	}
	list = append(list, add...)
	ids, files, err := p.r.SaveIndexSet(ctx, old, list, indexSplitBlobs)
	p.rep.IndexWritten += len(ids)
	if err != nil {
		return err
	}
	next := make(map[repository.ID]*repository.IndexFile, len(ids))
	for i, id := range ids {
		next[id] = files[i]
	}
	for _, o := range old {
		err := p.r.Storage().Remove(ctx, storage.Handle{Kind: storage.KindIndex, Name: o.String()})
		if err != nil && !errors.Is(err, storage.ErrNotFound) {
			// Readers ignore it while the new set's last file exists. It
			// stays loaded so that any later index this run writes
			// supersedes it again: were it dropped, removing the file that
			// supersedes it now would bring its stale content back.
			p.o.Log("warning: cannot remove superseded index %s: %v", o.Short(), err)
			next[o] = p.files[o]
			continue
		}
		p.rep.IndexRemoved++
	}
	p.files = next
	p.recompute()
	return nil
}

// removeSuperseded removes index files that a loaded file supersedes: left
// over when a prune stopped after writing its replacement.
func (p *pruner) removeSuperseded(ctx context.Context) {
	superseded := map[repository.ID]bool{}
	for _, f := range p.files {
		for _, s := range f.Supersedes {
			superseded[s] = true
		}
	}
	for id := range p.files {
		if !superseded[id] {
			continue
		}
		err := p.r.Storage().Remove(ctx, storage.Handle{Kind: storage.KindIndex, Name: id.String()})
		if err != nil && !errors.Is(err, storage.ErrNotFound) {
			p.o.Log("warning: cannot remove superseded index %s: %v", id.Short(), err)
			continue
		}
		delete(p.files, id)
		p.rep.IndexRemoved++
	}
}

type packUse struct {
	keep     []repository.PackEntry
	usedB    int64
	unusedB  int64
	allBlobs int
}

// phaseOne condemns unused packs, repacks packs with too much unused data
// (and, with RewriteOldTerms, every pack of an older term) and condemns
// unindexed packs when no other lock exists. It reports whether it wrote a
// condemned record.
func (p *pruner) phaseOne(ctx context.Context) (bool, error) {
	recs, err := p.r.LoadCondemned(ctx)
	if err != nil {
		return false, err
	}
	doomed := map[repository.ID]bool{}
	for _, r := range recs {
		for _, pk := range r.Packs {
			doomed[pk] = true
		}
	}
	// Each used blob is kept in one pack: the smallest ID among the stored,
	// uncondemned packs holding it. Blobs only in condemned packs are left
	// to phase two, which rescues their packs.
	use := map[repository.ID]*packUse{}
	for h := range p.used.blobs {
		var best *blobLoc
		for i, l := range p.loc[h] {
			if _, ok := p.stored[l.pack]; !ok || doomed[l.pack] {
				continue
			}
			if best == nil || cmpID(l.pack, best.pack) < 0 {
				best = &p.loc[h][i]
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
	var unused, mixed, repack, missing []repository.ID
	var totalUsed, totalUnused int64
	current := p.r.CurrentTerm()
	ids := make([]repository.ID, 0, len(p.active))
	for id := range p.active {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, cmpID)
	for _, id := range ids {
		if doomed[id] {
			continue
		}
		if _, ok := p.stored[id]; !ok {
			missing = append(missing, id)
			continue
		}
		u := use[id]
		if u == nil {
			unused = append(unused, id)
			p.rep.UnusedBytes += p.stored[id]
			continue
		}
		u.allBlobs = len(p.active[id].Blobs)
		for _, e := range p.active[id].Blobs {
			u.unusedB += int64(e.Length)
		}
		u.unusedB -= u.usedB
		totalUsed += u.usedB
		if p.o.RewriteOldTerms {
			pr, err := p.r.OpenPackHeader(ctx, id)
			if err != nil {
				return false, fmt.Errorf("%w: %w", ErrUnsafe, err)
			}
			if pr.Term() < current {
				repack = append(repack, id)
				p.rep.OldTermPacks++
				continue
			}
		}
		if len(u.keep) < u.allBlobs {
			mixed = append(mixed, id)
			totalUnused += u.unusedB
		}
	}
	// Repack the packs with the largest unused share first until the rest
	// is within the limit.
	slices.SortStableFunc(mixed, func(a, b repository.ID) int {
		ua, ub := use[a], use[b]
		ra := float64(ua.unusedB) / float64(ua.unusedB+ua.usedB)
		rb := float64(ub.unusedB) / float64(ub.unusedB+ub.usedB)
		switch {
		case ra > rb:
			return -1
		case ra < rb:
			return 1
		}
		return cmpID(a, b)
	})
	limit := p.o.MaxUnused.Limit(totalUsed)
	for _, id := range mixed {
		if totalUnused <= limit {
			break
		}
		repack = append(repack, id)
		totalUnused -= use[id].unusedB
	}
	// Packs no index names: condemned only when no other process could be
	// about to index them.
	var unindexed []repository.ID
	for id := range p.stored {
		if _, ok := p.active[id]; !ok && !doomed[id] {
			unindexed = append(unindexed, id)
		}
	}
	slices.SortFunc(unindexed, cmpID)
	if len(unindexed) > 0 {
		others, err := p.otherLocks(ctx)
		if err != nil {
			return false, err
		}
		if len(others) > 0 {
			p.rep.UnindexedKept = len(unindexed)
			unindexed = nil
		}
	}
	p.rep.UnusedPacks = len(unused)
	p.rep.UnindexedPacks = len(unindexed)
	p.rep.MissingPacks = len(missing)
	p.rep.RepackedPacks = len(repack)
	for _, id := range repack {
		p.rep.RepackedBlobs += len(use[id].keep)
		p.rep.RepackedBytes += use[id].usedB
	}
	condemn := slices.Concat(unused, repack, unindexed)
	slices.SortFunc(condemn, cmpID)
	p.rep.CondemnedPacks = len(condemn)
	if p.o.DryRun {
		return len(condemn) > 0, nil
	}

	newPacks, err := p.repack(ctx, repack, use)
	if err != nil {
		return false, err
	}
	if len(newPacks) > 0 || len(missing) > 0 || p.o.RewriteOldTerms {
		drop := map[repository.ID]bool{}
		for _, id := range missing {
			drop[id] = true
		}
		if err := p.writeIndex(ctx, drop, newPacks); err != nil {
			return false, err
		}
	}
	if len(condemn) == 0 {
		return false, nil
	}
	rec := &repository.CondemnedRecord{Time: p.o.Now().UTC(), Packs: condemn}
	if err := p.r.SaveCondemned(ctx, rec); err != nil {
		return false, fmt.Errorf("write condemned record: %w", err)
	}
	p.o.Log("condemned %d packs (record %s)", len(condemn), rec.ID.Short())
	return true, nil
}

// repack copies the kept blobs of packs into new packs and returns them.
func (p *pruner) repack(ctx context.Context, packs []repository.ID, use map[repository.ID]*packUse) ([]repository.IndexPack, error) {
	if len(packs) == 0 {
		return nil, nil
	}
	p.o.Log("repacking %d packs", len(packs))
	var out []repository.IndexPack
	var pw *repository.PackWriter
	flush := func() error {
		if pw == nil || pw.Count() == 0 {
			return nil
		}
		ip, size, err := p.r.SavePack(ctx, pw)
		if err != nil {
			return err
		}
		out = append(out, ip)
		p.stored[ip.ID] = size
		p.rep.NewPacks++
		p.rep.NewPackBytes += size
		pw = nil
		return nil
	}
	packSize := p.r.Config().PackSize
	for _, id := range packs {
		entries := slices.Clone(use[id].keep)
		slices.SortFunc(entries, func(a, b repository.PackEntry) int { return cmp.Compare(a.Offset, b.Offset) })
		for _, e := range entries {
			data, err := p.r.LoadBlob(ctx, e.Type, e.ID)
			if err != nil {
				return nil, fmt.Errorf("repack pack %s: %w", id.Short(), err)
			}
			if pw == nil {
				if pw, err = p.r.NewPackWriter(); err != nil {
					return nil, err
				}
			}
			if err := pw.Add(e.Type, e.ID, data); err != nil {
				return nil, err
			}
			if pw.Size() >= packSize {
				if err := flush(); err != nil {
					return nil, err
				}
			}
		}
	}
	if err := flush(); err != nil {
		return nil, err
	}
	return out, nil
}
