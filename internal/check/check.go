// Package check verifies a repository without modifying it: index files,
// packs, snapshots and trees, and with ReadData every blob's keyed hash.
package check

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coffer-backup/coffer/internal/bytesize"
	"github.com/coffer-backup/coffer/internal/crypto"
	"github.com/coffer-backup/coffer/internal/repository"
	"github.com/coffer-backup/coffer/internal/storage"
	"golang.org/x/sync/errgroup"
)

// ErrDamaged is returned by Result.Err when check found damage.
var ErrDamaged = errors.New("repository is damaged")

// ErrBadSubset is returned by ParseSubset.
var ErrBadSubset = errors.New("invalid --read-data-subset")

// Subset selects which packs --read-data-subset reads: a random percentage,
// random packs up to a total size, or group N of M (packs whose first ID
// byte modulo M is N-1), as restic.
type Subset struct {
	Percent float64
	Bytes   int64
	N, M    int
}

// ParseSubset reads "12.5%", "n/m" (1 <= n <= m) or a size in
// internal/bytesize's grammar ("500M", "2GiB").
func ParseSubset(s string) (Subset, error) {
	if p, ok := strings.CutSuffix(s, "%"); ok {
		f, err := strconv.ParseFloat(p, 64)
		if err != nil || math.IsNaN(f) || f <= 0 || f > 100 {
			return Subset{}, fmt.Errorf("%w %q: want a percentage in (0, 100]", ErrBadSubset, s)
		}
		return Subset{Percent: f}, nil
	}
	a, b, ok := strings.Cut(s, "/")
	if ok {
		n, err1 := strconv.Atoi(a)
		m, err2 := strconv.Atoi(b)
		if err1 == nil && err2 == nil && m >= 1 && m <= 256 && n >= 1 && n <= m {
			return Subset{N: n, M: m}, nil
		}
	}
	if n, err := bytesize.Parse(s); err == nil && n > 0 && !ok {
		return Subset{Bytes: n}, nil
	}
	return Subset{}, fmt.Errorf("%w %q: want N%%, n/m or a size such as 500M", ErrBadSubset, s)
}

// all reports whether the subset selects every pack.
func (s Subset) all() bool { return s.Percent == 0 && s.M == 0 && s.Bytes == 0 }

// pick returns the packs of ids the subset selects; size gives a pack's
// stored size.
func (s Subset) pick(ids []repository.ID, size func(repository.ID) int64) []repository.ID {
	switch {
	case s.all():
		return ids
	case s.M > 0:
		var out []repository.ID
		for _, id := range ids {
			if int(id[0])%s.M == s.N-1 {
				out = append(out, id)
			}
		}
		return out
	}
	out := slices.Clone(ids)
	// #nosec G404 -- choosing which packs to verify needs no secrecy
	rand.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	n := len(out)
	if s.Bytes > 0 {
		// Random packs until their sizes reach the budget, as restic.
		var total int64
		for n = 0; n < len(out) && total < s.Bytes; n++ {
			total += size(out[n])
		}
	} else {
		n = min(n, int(math.Ceil(s.Percent/100*float64(len(ids)))))
	}
	out = out[:n]
	slices.SortFunc(out, cmpID)
	return out
}

// Options configure Check.
type Options struct {
	// ReadData reads every selected pack whole and verifies every blob.
	ReadData bool
	// Subset limits ReadData to some packs; the zero value reads all.
	Subset Subset
	// Progress, if set, is updated as the check goes: a display reads it
	// from another goroutine. Nil keeps the counts to Check itself.
	Progress *Progress
	// PhaseDone, if set, is called by Check's goroutine as each phase
	// ends, with that phase's final counts. Nil calls nothing.
	PhaseDone func(Status)
}

// AffectedFile is a path in a snapshot whose data is (partly) lost. A
// directory path means the whole directory could not be read.
type AffectedFile struct {
	Snapshot repository.ID `json:"snapshot"`
	Path     string        `json:"path"`
}

// ObjectError is an object that does not load or decode.
type ObjectError struct {
	Kind storage.Kind `json:"kind"`
	Name string       `json:"name"`
	Err  string       `json:"error"`
}

// PackProblem is a pack that is missing, damaged or inconsistent with the
// index, with the snapshot files whose data is lost because of it.
type PackProblem struct {
	Pack     repository.ID  `json:"pack"`
	Problem  string         `json:"problem"`
	BadBlobs int            `json:"bad_blobs,omitempty"`
	Affected []AffectedFile `json:"affected,omitempty"`
}

// BlobProblem is a used blob that is missing or unreadable.
type BlobProblem struct {
	Type     repository.BlobType `json:"-"`
	TypeName string              `json:"type"`
	ID       repository.ID       `json:"id"`
	Problem  string              `json:"problem"`
	Affected []AffectedFile      `json:"affected,omitempty"`
}

// Result holds everything check found. Warnings do not make it damaged.
type Result struct {
	IndexFiles int `json:"index_files"`
	Packs      int `json:"packs"`
	Snapshots  int `json:"snapshots"`
	Trees      int `json:"trees"`
	DataBlobs  int `json:"data_blobs"`
	PacksRead  int `json:"packs_read"`

	ObjectErrors   []ObjectError `json:"object_errors,omitempty"`   // index, snapshot, condemned, forget objects
	MissingPacks   []PackProblem `json:"missing_packs,omitempty"`   // indexed but not stored, or not reachable
	SizeMismatches []PackProblem `json:"size_mismatches,omitempty"` // stored size differs from the index
	DamagedPacks   []PackProblem `json:"damaged_packs,omitempty"`   // read and found damaged
	LostBlobs      []BlobProblem `json:"lost_blobs,omitempty"`      // used blobs with no good copy
	// UnindexedPacks are stored packs no index names: leftovers of an
	// interrupted backup, or a backup in progress. Prune removes them.
	UnindexedPacks []repository.ID `json:"unindexed_packs,omitempty"`
	// TempFiles and TempBytes: temporary files older than TempAge that
	// killed writers left (local storage only). Prune removes them.
	TempFiles int   `json:"temp_files,omitempty"`
	TempBytes int64 `json:"temp_bytes,omitempty"`
	// Warnings are findings that lose no data.
	Warnings []string `json:"warnings,omitempty"`

	read []repository.ID // packs read with ReadData
}

// PackVerdicts returns the packs read that were found damaged and those
// found intact, for the client state that keeps backups from
// deduplicating against damaged packs (repository.RecordDamaged).
func (r *Result) PackVerdicts() (damaged, intact []repository.ID) {
	bad := map[repository.ID]bool{}
	for _, p := range r.DamagedPacks {
		bad[p.Pack] = true
		damaged = append(damaged, p.Pack)
	}
	for _, id := range r.read {
		if !bad[id] {
			intact = append(intact, id)
		}
	}
	return damaged, intact
}

// Damaged reports whether anything but warnings was found.
func (r *Result) Damaged() bool {
	return len(r.ObjectErrors)+len(r.MissingPacks)+len(r.SizeMismatches)+len(r.DamagedPacks)+len(r.LostBlobs) > 0
}

// Err returns nil, or ErrDamaged with a one-line summary.
func (r *Result) Err() error {
	if !r.Damaged() {
		return nil
	}
	var parts []string
	for _, x := range []struct {
		n    int
		what string
	}{{len(r.ObjectErrors), "unreadable objects"}, {len(r.MissingPacks), "missing packs"},
		{len(r.SizeMismatches), "packs of the wrong size"}, {len(r.DamagedPacks), "damaged packs"},
		{len(r.LostBlobs), "lost blobs"}} {
		if x.n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", x.n, x.what))
		}
	}
	return fmt.Errorf("%w: %s", ErrDamaged, strings.Join(parts, ", "))
}

func cmpID(a, b repository.ID) int { return bytes.Compare(a[:], b[:]) }

type checker struct {
	r   *repository.Repository
	o   Options
	p   *Progress
	res *Result

	active map[repository.ID]repository.IndexPack
	loc    map[repository.BlobHandle][]repository.ID
	stored map[repository.ID]int64

	mu       sync.Mutex
	badBlobs map[repository.ID]map[repository.BlobHandle]bool // per pack; nil map: whole pack bad
	badPack  map[repository.ID]bool
	treeErr  map[repository.ID]error
	used     map[repository.BlobHandle]bool
	snaps    []*repository.Snapshot
}

// Check verifies the repository. It never writes to it; the error is only
// for failures that stop the check itself (index files or snapshots that
// cannot be listed; a failed pack listing is worked around), while
// damage is reported in the Result.
func Check(ctx context.Context, r *repository.Repository, o Options) (*Result, error) {
	if o.Progress == nil {
		o.Progress = &Progress{}
	}
	c := &checker{r: r, o: o, p: o.Progress, res: &Result{}, badBlobs: map[repository.ID]map[repository.BlobHandle]bool{},
		badPack: map[repository.ID]bool{}, treeErr: map[repository.ID]error{}, used: map[repository.BlobHandle]bool{}}
	phases := []struct {
		ph  Phase
		run func(context.Context) error
	}{
		{PhaseIndex, c.loadIndex},
		{PhasePacks, func(ctx context.Context) error {
			if err := c.checkPacks(ctx); err != nil {
				return err
			}
			return c.checkRecords(ctx)
		}},
		{PhaseSnapshots, c.checkSnapshots},
		{PhaseReadData, c.readData},
	}
	for _, x := range phases {
		if x.ph == PhaseReadData && !o.ReadData {
			break
		}
		c.p.begin(x.ph)
		if err := x.run(ctx); err != nil {
			return nil, err
		}
		if o.PhaseDone != nil {
			o.PhaseDone(c.p.Status())
		}
	}
	if err := c.findLost(ctx); err != nil {
		return nil, err
	}
	if err := c.checkTemp(); err != nil {
		return nil, err
	}
	return c.res, nil
}

// TempAge is the age from which check reports temporary files: prune's
// default safety margin, far longer than any write in progress takes.
const TempAge = time.Hour

// checkTemp reports the temporary files that killed writers left, when
// the storage can list them.
func (c *checker) checkTemp() error {
	tl, ok := c.r.Storage().(interface {
		TempFiles(olderThan time.Duration) (int, int64, error)
	})
	if !ok {
		return nil
	}
	n, size, err := tl.TempFiles(TempAge)
	if err != nil {
		// Like a failed pack listing, this is no reason to stop.
		c.res.Warnings = append(c.res.Warnings, fmt.Sprintf("temporary files not counted: %v", err))
		return nil
	}
	c.res.TempFiles, c.res.TempBytes = n, size
	if n > 0 {
		c.res.Warnings = append(c.res.Warnings, fmt.Sprintf(
			"%d temporary files (%s) older than %v, left by interrupted writes: prune removes them", n, bytesize.Format(size), TempAge))
	}
	return nil
}

func (c *checker) objectError(k storage.Kind, name string, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.res.ObjectErrors = append(c.res.ObjectErrors, ObjectError{Kind: k, Name: name, Err: err.Error()})
}

// loadIndex loads every index file it can and builds the index from them.
func (c *checker) loadIndex(ctx context.Context) error {
	ids, err := c.r.ListIDs(ctx, storage.KindIndex)
	if err != nil {
		return err
	}
	c.p.indexFilesTotal.Store(uint64(len(ids)))
	files := map[repository.ID]*repository.IndexFile{}
	for _, id := range ids {
		f, err := c.r.LoadIndexFile(ctx, id)
		c.p.indexFiles.Add(1)
		if errors.Is(err, storage.ErrNotFound) {
			continue
		}
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			c.objectError(storage.KindIndex, id.String(), err)
			continue
		}
		files[id] = f
	}
	c.res.IndexFiles = len(ids)
	superseded := map[repository.ID]bool{}
	for _, f := range files {
		for _, s := range f.Supersedes {
			superseded[s] = true
		}
	}
	c.active = map[repository.ID]repository.IndexPack{}
	c.loc = map[repository.BlobHandle][]repository.ID{}
	var use []*repository.IndexFile
	for id, f := range files {
		if superseded[id] {
			continue
		}
		use = append(use, f)
		for _, p := range f.Packs {
			if old, dup := c.active[p.ID]; dup {
				if !sameEntries(old.Blobs, p.Blobs) {
					c.res.Warnings = append(c.res.Warnings, fmt.Sprintf("pack %s is listed differently by two index files", p.ID.Short()))
				}
				continue
			}
			c.active[p.ID] = p
			for _, e := range p.Blobs {
				h := repository.BlobHandle{Type: e.Type, ID: e.ID}
				c.loc[h] = append(c.loc[h], p.ID)
			}
		}
	}
	idx := repository.NewMasterIndex()
	idx.AddFiles(use)
	c.r.UseIndex(idx)
	return nil
}

func sortedEntries(e []repository.PackEntry) []repository.PackEntry {
	out := slices.Clone(e)
	slices.SortFunc(out, func(a, b repository.PackEntry) int { return cmp.Compare(a.Offset, b.Offset) })
	return out
}

func sameEntries(a, b []repository.PackEntry) bool {
	return slices.Equal(sortedEntries(a), sortedEntries(b))
}

// checkPacks compares the packs in storage with the index.
func (c *checker) checkPacks(ctx context.Context) error {
	c.stored = map[repository.ID]int64{}
	err := c.r.Storage().List(ctx, storage.KindData, func(fi storage.FileInfo) error {
		id, err := repository.ParseID(fi.Name)
		if err != nil {
			c.res.Warnings = append(c.res.Warnings, fmt.Sprintf("foreign object data/%s", fi.Name))
			return nil
		}
		c.stored[id] = fi.Size
		c.p.packs.Add(1)
		return nil
	})
	var unreachable map[repository.ID]error
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		// One unreadable shard of data/ must not stop the check, nor make
		// every pack it did not list look lost: look each up by itself.
		c.res.Warnings = append(c.res.Warnings, fmt.Sprintf("the pack listing failed (%v): every indexed pack it did not list was looked up by itself; packs in no index may be unreported", err))
		if unreachable, err = c.statUnlisted(ctx); err != nil {
			return err
		}
	}
	c.res.Packs = len(c.stored)
	for _, id := range sortedKeys(c.active) {
		size, ok := c.stored[id]
		if !ok {
			problem := "named by the index but not in storage"
			if err := unreachable[id]; err != nil {
				problem = fmt.Sprintf("named by the index but cannot be reached in storage: %v", err)
			}
			c.res.MissingPacks = append(c.res.MissingPacks, PackProblem{Pack: id, Problem: problem})
			c.badPack[id] = true
			continue
		}
		if want := repository.ExpectedPackSize(c.active[id].Blobs); want != size {
			c.res.SizeMismatches = append(c.res.SizeMismatches, PackProblem{Pack: id,
				Problem: fmt.Sprintf("stored size %d, the index implies %d", size, want)})
			c.badPack[id] = true
		}
	}
	for _, id := range sortedKeys(c.stored) {
		if _, ok := c.active[id]; !ok {
			c.res.UnindexedPacks = append(c.res.UnindexedPacks, id)
		}
	}
	return nil
}

// statUnlisted looks up, one by one, the indexed packs a failed listing
// did not report, adding those found to c.stored. It returns the packs
// that could not be looked up, with why; those not found are neither.
func (c *checker) statUnlisted(ctx context.Context) (map[repository.ID]error, error) {
	unreachable := map[repository.ID]error{}
	for _, id := range sortedKeys(c.active) {
		if _, ok := c.stored[id]; ok {
			continue
		}
		fi, err := c.r.Storage().Stat(ctx, storage.Handle{Kind: storage.KindData, Name: id.String()})
		switch {
		case err == nil:
			c.stored[id] = fi.Size
		case ctx.Err() != nil:
			return nil, ctx.Err()
		case !errors.Is(err, storage.ErrNotFound):
			unreachable[id] = err
		}
	}
	return unreachable, nil
}

func sortedKeys[V any](m map[repository.ID]V) []repository.ID {
	out := make([]repository.ID, 0, len(m))
	for id := range m {
		out = append(out, id)
	}
	slices.SortFunc(out, cmpID)
	return out
}

// checkRecords opens the forget and condemned records: a damaged forget
// record breaks rollback detection, a damaged condemned record breaks
// backups' deduplication safety.
func (c *checker) checkRecords(ctx context.Context) error {
	for _, k := range []struct {
		kind storage.Kind
		obj  crypto.ObjectKind
		v    func() any
	}{
		{storage.KindForgets, crypto.KindForget, func() any { return &repository.ForgetRecord{} }},
		{storage.KindCondemned, crypto.KindCondemned, func() any { return &repository.CondemnedRecord{} }},
	} {
		ids, err := c.r.ListIDs(ctx, k.kind)
		if err != nil {
			return err
		}
		for _, id := range ids {
			plain, err := c.r.LoadSealed(ctx, storage.Handle{Kind: k.kind, Name: id.String()}, k.obj)
			if errors.Is(err, storage.ErrNotFound) {
				continue
			}
			if err == nil {
				err = json.Unmarshal(plain, k.v())
			}
			if err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				c.objectError(k.kind, id.String(), err)
			}
		}
	}
	return nil
}

// checkSnapshots loads every snapshot and walks every tree once.
func (c *checker) checkSnapshots(ctx context.Context) error {
	ids, err := c.r.ListIDs(ctx, storage.KindSnapshots)
	if err != nil {
		return err
	}
	c.p.snapshotsTotal.Store(uint64(len(ids)))
	for _, id := range ids {
		s, err := c.r.LoadSnapshot(ctx, id)
		c.p.snapshots.Add(1)
		if errors.Is(err, storage.ErrNotFound) {
			continue
		}
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			c.objectError(storage.KindSnapshots, id.String(), err)
			continue
		}
		c.snaps = append(c.snaps, s)
	}
	repository.SortSnapshots(c.snaps)
	c.res.Snapshots = len(c.snaps)
	seen := map[repository.ID]bool{}
	var frontier []repository.ID
	for _, s := range c.snaps {
		if !seen[s.Tree] {
			seen[s.Tree] = true
			frontier = append(frontier, s.Tree)
		}
	}
	for len(frontier) > 0 {
		var next []repository.ID
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(8)
		for _, id := range frontier {
			g.Go(func() error {
				t, err := c.r.LoadTree(gctx, id)
				c.p.trees.Add(1)
				c.mu.Lock()
				defer c.mu.Unlock()
				c.used[repository.BlobHandle{Type: repository.TreeBlob, ID: id}] = true
				if err != nil {
					if gctx.Err() != nil {
						return gctx.Err()
					}
					c.treeErr[id] = err
					return nil
				}
				for _, n := range t.Nodes {
					for _, it := range n.Content {
						if it.ID != nil {
							c.used[repository.BlobHandle{Type: repository.DataBlob, ID: *it.ID}] = true
						}
					}
					if n.Subtree != nil && !seen[*n.Subtree] {
						seen[*n.Subtree] = true
						next = append(next, *n.Subtree)
					}
				}
				return nil
			})
		}
		if err := g.Wait(); err != nil {
			return err
		}
		frontier = next
	}
	c.res.Trees = len(seen)
	c.res.DataBlobs = len(c.used) - len(seen)
	return nil
}

// readData reads the selected packs whole and verifies them.
func (c *checker) readData(ctx context.Context) error {
	var ids []repository.ID
	for _, id := range sortedKeys(c.active) {
		if _, ok := c.stored[id]; ok {
			ids = append(ids, id)
		}
	}
	ids = c.o.Subset.pick(ids, func(id repository.ID) int64 { return c.stored[id] })
	c.res.PacksRead = len(ids)
	c.res.read = ids
	var total int64
	for _, id := range ids {
		total += c.stored[id]
	}
	c.p.packsReadTotal.Store(uint64(len(ids)))
	c.p.bytesReadTotal.Store(uint64(max(total, 0))) // #nosec G115 -- clamped at 0
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(2)
	for _, id := range ids {
		g.Go(func() error {
			err := c.readPack(gctx, id)
			c.p.packsRead.Add(1)
			c.p.bytesRead.Add(uint64(max(c.stored[id], 0))) // #nosec G115 -- clamped at 0
			return err
		})
	}
	return g.Wait()
}

func (c *checker) packDamaged(id repository.ID, problem string, bad map[repository.BlobHandle]bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.badPack[id] = true
	if bad == nil {
		bad = map[repository.BlobHandle]bool{}
		for _, e := range c.active[id].Blobs {
			bad[repository.BlobHandle{Type: e.Type, ID: e.ID}] = true
		}
	}
	c.badBlobs[id] = bad
	c.res.DamagedPacks = append(c.res.DamagedPacks, PackProblem{Pack: id, Problem: problem, BadBlobs: len(bad)})
}

// readPack verifies one pack: header, directory against the index, and
// every blob's authentication, decompression and keyed hash.
func (c *checker) readPack(ctx context.Context, id repository.ID) error {
	size, listed := c.stored[id]
	if !listed {
		size = -1
	}
	// A pack larger than any the packer writes is refused unread: a hostile
	// storage could otherwise make check allocate without bound.
	data, err := c.r.LoadObject(ctx, storage.Handle{Kind: storage.KindData, Name: id.String()}, size)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		c.packDamaged(id, fmt.Sprintf("cannot be read: %v", err), nil)
		return nil
	}
	if len(data) < crypto.HeaderSize+4 {
		c.packDamaged(id, "truncated", nil)
		return nil
	}
	pr, err := repository.NewPackReader(id, data[:crypto.HeaderSize], c.r.KeyLookup, c.r.ID())
	if err != nil {
		c.packDamaged(id, fmt.Sprintf("header: %v", err), nil)
		return nil
	}
	dir, err := pr.ParseDirectory(data, int64(len(data)))
	if err != nil {
		c.packDamaged(id, fmt.Sprintf("directory: %v", err), nil)
		return nil
	}
	want := c.active[id].Blobs
	if !sameEntries(dir, want) {
		c.packDamaged(id, "its directory differs from the index", nil)
		return nil
	}
	bad := map[repository.BlobHandle]bool{}
	var first error
	for _, e := range dir {
		plain, err := pr.OpenBlob(e, data[e.Offset:e.Offset+e.Length])
		if err == nil {
			if got := c.r.Hasher().Sum(plain); got != e.ID {
				err = fmt.Errorf("blob %s hashes to %s", e.ID.Short(), got.Short())
			}
		}
		if err != nil {
			bad[repository.BlobHandle{Type: e.Type, ID: e.ID}] = true
			if first == nil {
				first = err
			}
		}
	}
	if len(bad) > 0 {
		c.packDamaged(id, fmt.Sprintf("%d blobs damaged, first: %v", len(bad), first), bad)
	}
	return nil
}

// lost reports whether every copy of a used blob is missing or damaged.
func (c *checker) lost(h repository.BlobHandle) bool {
	for _, p := range c.loc[h] {
		if !c.badPack[p] {
			return false
		}
		if bb, ok := c.badBlobs[p]; ok && !bb[h] {
			return false
		}
	}
	return true
}

// findLost lists used blobs without a good copy and, when there are any,
// walks the snapshots again to name the files they belong to.
func (c *checker) findLost(ctx context.Context) error {
	lost := map[repository.BlobHandle]string{}
	for h := range c.used {
		if err, ok := c.treeErr[h.ID]; ok && h.Type == repository.TreeBlob {
			lost[h] = err.Error()
			continue
		}
		if len(c.loc[h]) == 0 {
			lost[h] = "in no index"
			continue
		}
		if c.lost(h) {
			lost[h] = "every copy is in a missing or damaged pack"
		}
	}
	if len(lost) == 0 {
		return nil
	}
	affected, err := c.affectedFiles(ctx, lost)
	if err != nil {
		return err
	}
	for h, why := range lost {
		c.res.LostBlobs = append(c.res.LostBlobs, BlobProblem{Type: h.Type, TypeName: h.Type.String(), ID: h.ID, Problem: why, Affected: affected[h]})
	}
	slices.SortFunc(c.res.LostBlobs, func(a, b BlobProblem) int { return cmpID(a.ID, b.ID) })
	addAffected := func(ps []PackProblem) {
		for i := range ps {
			set := map[AffectedFile]bool{}
			for h := range lost {
				if slices.Contains(c.loc[h], ps[i].Pack) {
					for _, a := range affected[h] {
						set[a] = true
					}
				}
			}
			ps[i].Affected = sortedAffected(set)
		}
	}
	addAffected(c.res.MissingPacks)
	addAffected(c.res.SizeMismatches)
	addAffected(c.res.DamagedPacks)
	slices.SortFunc(c.res.DamagedPacks, func(a, b PackProblem) int { return cmpID(a.Pack, b.Pack) })
	return nil
}

func sortedAffected(set map[AffectedFile]bool) []AffectedFile {
	out := make([]AffectedFile, 0, len(set))
	for a := range set {
		out = append(out, a)
	}
	slices.SortFunc(out, func(a, b AffectedFile) int {
		if c := cmpID(a.Snapshot, b.Snapshot); c != 0 {
			return c
		}
		return strings.Compare(a.Path, b.Path)
	})
	return out
}

type hit struct {
	path string // relative to the tree, "" for the tree itself
	blob repository.BlobHandle
}

// affectedFiles maps each lost blob to the snapshot paths that need it.
// Each tree is read at most once more (results are memoised per tree).
func (c *checker) affectedFiles(ctx context.Context, lost map[repository.BlobHandle]string) (map[repository.BlobHandle][]AffectedFile, error) {
	memo := map[repository.ID][]hit{}
	var visit func(id repository.ID) ([]hit, error)
	visit = func(id repository.ID) ([]hit, error) {
		if h, ok := memo[id]; ok {
			return h, nil
		}
		th := repository.BlobHandle{Type: repository.TreeBlob, ID: id}
		if _, bad := lost[th]; bad {
			memo[id] = []hit{{blob: th}}
			return memo[id], nil
		}
		t, err := c.r.LoadTree(ctx, id)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			memo[id] = []hit{{blob: th}}
			return memo[id], nil
		}
		var out []hit
		for _, n := range t.Nodes {
			name := string(n.Name)
			for _, it := range n.Content {
				if it.ID == nil {
					continue
				}
				h := repository.BlobHandle{Type: repository.DataBlob, ID: *it.ID}
				if _, bad := lost[h]; bad {
					out = append(out, hit{path: name, blob: h})
				}
			}
			if n.Subtree != nil {
				sub, err := visit(*n.Subtree)
				if err != nil {
					return nil, err
				}
				for _, s := range sub {
					p := name
					if s.path != "" {
						p = name + "/" + s.path
					}
					out = append(out, hit{path: p, blob: s.blob})
				}
			}
		}
		memo[id] = out
		return out, nil
	}
	sets := map[repository.BlobHandle]map[AffectedFile]bool{}
	for _, s := range c.snaps {
		hits, err := visit(s.Tree)
		if err != nil {
			return nil, err
		}
		for _, h := range hits {
			if sets[h.blob] == nil {
				sets[h.blob] = map[AffectedFile]bool{}
			}
			sets[h.blob][AffectedFile{Snapshot: s.ID, Path: "/" + h.path}] = true
		}
	}
	out := map[repository.BlobHandle][]AffectedFile{}
	for h, set := range sets {
		out[h] = sortedAffected(set)
	}
	return out, nil
}
