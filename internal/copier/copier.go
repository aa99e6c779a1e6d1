// Package copier copies snapshots from one unlocked repository to another
// (restic's `copy`): blobs the target has are not copied again, and data is
// re-chunked only when the two repositories cut and name data differently.
package copier

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync/atomic"

	"github.com/coffer-backup/coffer/internal/chunker"
	"github.com/coffer-backup/coffer/internal/fsmeta"
	"github.com/coffer-backup/coffer/internal/repository"
)

// Skip is a source snapshot the target already holds a copy of.
type Skip struct {
	Source *repository.Snapshot
	// Existing is the target's snapshot that copies it (or that it copies).
	Existing repository.ID
}

// Plan returns which of src the target, holding dst, lacks, in src's order,
// and which it already holds. A snapshot is identified by its original
// (Snapshot.Original, else its own ID): the target holds it when one of
// its snapshots has that identity or that ID. aliases maps a source
// snapshot's ID to older IDs it had before `prune --rewrite-old-terms`
// re-sealed it (nil: none), which a copy may name as its original. Two
// source snapshots of the same identity are copied once.
func Plan(src, dst []*repository.Snapshot, aliases map[repository.ID][]repository.ID) (todo []*repository.Snapshot, skip []Skip) {
	held := map[repository.ID]repository.ID{} // identity or ID in dst → dst snapshot
	for _, s := range dst {
		held[s.ID] = s.ID
		held[identity(s)] = s.ID
	}
	for _, s := range src {
		if ex, ok := holds(held, s, aliases[s.ID]); ok {
			skip = append(skip, Skip{Source: s, Existing: ex})
			continue
		}
		todo = append(todo, s)
		held[identity(s)] = repository.ID{} // copied by this run
	}
	return todo, skip
}

func holds(held map[repository.ID]repository.ID, s *repository.Snapshot, aliases []repository.ID) (repository.ID, bool) {
	for _, id := range append([]repository.ID{identity(s), s.ID}, aliases...) {
		if ex, ok := held[id]; ok {
			return ex, true
		}
	}
	return repository.ID{}, false
}

// identity is the ID of the snapshot s copies, or s's own.
func identity(s *repository.Snapshot) repository.ID {
	if s.Original != nil {
		return *s.Original
	}
	return s.ID
}

// Progress counts what a copy did; it is safe to read while a copy runs.
type Progress struct {
	Todo       atomic.Uint64 // snapshots to copy, once planned
	Snapshots  atomic.Uint64 // snapshots written to the target
	Trees      atomic.Uint64 // trees visited
	Blobs      atomic.Uint64 // blobs read from the source (or re-chunked data read)
	BytesRead  atomic.Uint64 // plaintext bytes read from the source
	BlobsNew   atomic.Uint64 // blobs the target did not have
	BytesAdded atomic.Uint64 // plaintext bytes of those blobs
}

// Copier copies snapshots from one repository to another. Both are open;
// the caller holds the locks (a shared one on the source, a backup's on
// the target), has loaded both indexes and keeps the target's lock valid.
type Copier struct {
	src, dst *repository.Repository
	// Rechunk is set when the repositories do not share blob IDs: file
	// contents go through the target's chunker and trees are re-encoded.
	Rechunk  bool
	progress *Progress
	// flushEvery is how many packs are written between index files.
	flushEvery uint64
	flushed    uint64
	// trees maps a source tree to its copy, for trees already done.
	trees map[repository.ID]repository.ID
	ch    *chunker.Chunker
	buf   []byte
}

// New returns a Copier from src to dst. progress may be nil.
func New(src, dst *repository.Repository, progress *Progress) *Copier {
	if progress == nil {
		progress = &Progress{}
	}
	return &Copier{src: src, dst: dst, Rechunk: !dst.SharesBlobIDs(src), progress: progress,
		flushEvery: 4, trees: map[repository.ID]repository.ID{}}
}

// ErrBlobIDMismatch: a blob copied without re-chunking got another ID in
// the target, so the repositories do not share blob IDs after all.
var ErrBlobIDMismatch = errors.New("a copied blob has another ID in the target")

// Copy writes the data and trees of s into the target and returns the
// snapshot to save there (the caller saves it, after checking its lock):
// s's fields with the copied tree, Original set, and no Parent (it names
// a snapshot of the source). Every pack it wrote is indexed when it
// returns; an index file is also written every few packs, so a copy
// killed midway resumes without uploading them again.
func (c *Copier) Copy(ctx context.Context, s *repository.Snapshot) (*repository.Snapshot, error) {
	c.dst.StartWriting(ctx)
	tree, err := c.copyTree(ctx, s.Tree)
	if ferr := c.dst.Flush(ctx); err == nil && ferr != nil {
		err = ferr
	}
	if err != nil {
		return nil, err
	}
	c.flushed = c.dst.Stats().Packs
	out := *s
	out.ID, out.Tree, out.Parent = repository.ID{}, tree, nil
	orig := identity(s)
	out.Original = &orig
	return &out, nil
}

// maybeFlush writes an index file once flushEvery packs were written
// since the last one.
func (c *Copier) maybeFlush(ctx context.Context) error {
	if c.dst.Stats().Packs-c.flushed < c.flushEvery {
		return nil
	}
	if err := c.dst.Flush(ctx); err != nil {
		return err
	}
	c.flushed = c.dst.Stats().Packs
	c.dst.StartWriting(ctx)
	return nil
}

// copyTree copies the tree id and everything below it, children first, so
// that a tree is stored only after what it names: a tree the target
// holds (here, with shared blob IDs) has its whole content there too.
func (c *Copier) copyTree(ctx context.Context, id repository.ID) (repository.ID, error) {
	if done, ok := c.trees[id]; ok {
		return done, nil
	}
	c.progress.Trees.Add(1)
	if !c.Rechunk && c.dst.Index().Has(repository.BlobHandle{Type: repository.TreeBlob, ID: id}) {
		c.trees[id] = id
		return id, nil
	}
	raw, err := c.src.LoadBlob(ctx, repository.TreeBlob, id)
	if err != nil {
		return repository.ID{}, fmt.Errorf("tree %s: %w", id.Short(), err)
	}
	t, err := repository.DecodeTree(raw)
	if err != nil {
		return repository.ID{}, fmt.Errorf("tree %s: %w", id.Short(), err)
	}
	for _, n := range t.Nodes {
		if err := c.copyNode(ctx, n); err != nil {
			return repository.ID{}, fmt.Errorf("%q: %w", n.Name, err)
		}
	}
	var newID repository.ID
	if c.Rechunk {
		newID, err = c.dst.SaveTree(ctx, t)
	} else {
		newID, err = c.save(ctx, repository.TreeBlob, id, raw)
	}
	if err != nil {
		return repository.ID{}, err
	}
	c.trees[id] = newID
	return newID, c.maybeFlush(ctx)
}

// copyNode copies what n names and points n at the copies.
func (c *Copier) copyNode(ctx context.Context, n *repository.Node) error {
	if n.Subtree != nil {
		sub, err := c.copyTree(ctx, *n.Subtree)
		if err != nil {
			return err
		}
		n.Subtree = &sub
	}
	if len(n.Content) == 0 {
		return nil
	}
	if c.Rechunk {
		content, err := c.rechunk(ctx, n.Content)
		if err != nil {
			return err
		}
		n.Content = content
		return c.maybeFlush(ctx)
	}
	for _, it := range n.Content {
		if it.ID == nil || c.dst.Index().Has(repository.BlobHandle{Type: repository.DataBlob, ID: *it.ID}) {
			continue
		}
		data, err := c.src.LoadBlobInto(ctx, repository.DataBlob, *it.ID, c.buf)
		if err != nil {
			return err
		}
		c.buf = data[:0]
		c.progress.Blobs.Add(1)
		c.progress.BytesRead.Add(uint64(len(data)))
		if _, err := c.save(ctx, repository.DataBlob, *it.ID, data); err != nil {
			return err
		}
	}
	return c.maybeFlush(ctx)
}

// save stores a blob copied as it is; its ID in the target must be id.
func (c *Copier) save(ctx context.Context, t repository.BlobType, id repository.ID, data []byte) (repository.ID, error) {
	got, isNew, err := c.dst.SaveBlob(ctx, t, data)
	if err != nil {
		return repository.ID{}, err
	}
	if got != id {
		return repository.ID{}, fmt.Errorf("%w: %s blob %s became %s", ErrBlobIDMismatch, t, id.Short(), got.Short())
	}
	c.count(isNew, len(data))
	return got, nil
}

func (c *Copier) count(isNew bool, n int) {
	if isNew {
		c.progress.BlobsNew.Add(1)
		c.progress.BytesAdded.Add(uint64(n)) // #nosec G115 -- a length
	}
}

// rechunk reads a file's content from the source and cuts it with the
// target's chunker: runs of data between holes are chunked each as one
// stream, holes stay holes, and chunks of zeros become holes, as a backup
// of the file would store it.
func (c *Copier) rechunk(ctx context.Context, items []repository.ContentItem) ([]repository.ContentItem, error) {
	var out []repository.ContentItem
	for i := 0; i < len(items); {
		if items[i].ID == nil {
			out = addHole(out, items[i].Hole)
			i++
			continue
		}
		j := i
		for j < len(items) && items[j].ID != nil {
			j++
		}
		var err error
		if out, err = c.rechunkRun(ctx, items[i:j], out); err != nil {
			return nil, err
		}
		i = j
	}
	return out, nil
}

func addHole(out []repository.ContentItem, n uint64) []repository.ContentItem {
	if n == 0 {
		return out
	}
	if l := len(out); l > 0 && out[l-1].Hole > 0 {
		out[l-1].Hole += n
		return out
	}
	return append(out, repository.ContentItem{Hole: n})
}

// rechunkRun chunks the data of run (data items only) into the target.
func (c *Copier) rechunkRun(ctx context.Context, run []repository.ContentItem, out []repository.ContentItem) ([]repository.ContentItem, error) {
	r := &blobReader{ctx: ctx, src: c.src, items: run, progress: c.progress}
	if c.ch == nil {
		c.ch = chunker.New(r, c.dst.ChunkerSecret(), c.dst.Config().Chunker)
	} else {
		c.ch.Reset(r)
	}
	var want, got uint64
	for _, it := range run {
		want += it.Size
	}
	for {
		chunk, err := c.ch.Next(c.buf[:0])
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		c.buf = chunk[:0]
		got += uint64(len(chunk))
		if fsmeta.IsZero(chunk) {
			out = addHole(out, uint64(len(chunk)))
			continue
		}
		id, isNew, err := c.dst.SaveBlob(ctx, repository.DataBlob, chunk)
		if err != nil {
			return nil, err
		}
		c.count(isNew, len(chunk))
		out = append(out, repository.ContentItem{ID: &id, Size: uint64(len(chunk))})
	}
	if got != want {
		return nil, fmt.Errorf("file content is %d bytes, its tree says %d", got, want)
	}
	return out, nil
}

// blobReader reads the data blobs of items one after the other.
type blobReader struct {
	ctx      context.Context
	src      *repository.Repository
	items    []repository.ContentItem
	cur      []byte
	buf      []byte
	progress *Progress
}

func (b *blobReader) Read(p []byte) (int, error) {
	for len(b.cur) == 0 {
		if len(b.items) == 0 {
			return 0, io.EOF
		}
		it := b.items[0]
		b.items = b.items[1:]
		data, err := b.src.LoadBlobInto(b.ctx, repository.DataBlob, *it.ID, b.buf)
		if err != nil {
			return 0, err
		}
		if uint64(len(data)) != it.Size {
			return 0, fmt.Errorf("data blob %s is %d bytes, its tree says %d", it.ID.Short(), len(data), it.Size)
		}
		b.progress.Blobs.Add(1)
		b.progress.BytesRead.Add(uint64(len(data)))
		b.cur, b.buf = data, data[:0]
	}
	n := copy(p, b.cur)
	b.cur = b.cur[n:]
	return n, nil
}
