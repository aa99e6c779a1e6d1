// Package archiver walks filesystem paths with full metadata and stores them
// as a snapshot: keyed chunking, deduplication, trees, the parent fast path.
package archiver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coffer-backup/coffer/internal/bufpool"
	"github.com/coffer-backup/coffer/internal/chunker"
	"github.com/coffer-backup/coffer/internal/filter"
	"github.com/coffer-backup/coffer/internal/fsmeta"
	"github.com/coffer-backup/coffer/internal/repository"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"
)

// Options configure a backup.
type Options struct {
	Excludes         *filter.Matcher // paths to leave out (nil: none)
	ExcludeCaches    bool            // leave out directories with a valid CACHEDIR.TAG
	ExcludeIfPresent []string        // leave out directories containing one of these names
	OneFileSystem    bool            // do not cross mount points below each path
	Parent           *repository.Snapshot
	Progress         *Progress // may be nil
	// OnFile, when not nil, is called once for each regular file stored,
	// with its path and whether it is new, changed or unchanged since the
	// parent snapshot (for `backup -v`). It is called from several
	// goroutines at once and must not block for long.
	OnFile func(path string, s FileStatus)
}

// FileStatus says how a stored file compares with the parent snapshot.
type FileStatus int

// The file statuses.
const (
	FileNew       FileStatus = iota // not in the parent snapshot (or no parent)
	FileChanged                     // in the parent, read again
	FileUnchanged                   // in the parent with the same content, not read
)

func (s FileStatus) String() string {
	switch s {
	case FileNew:
		return "new"
	case FileChanged:
		return "modified"
	case FileUnchanged:
		return "unchanged"
	}
	return "unknown"
}

// Progress counts a backup's work; fields are updated atomically and may be
// read at any time by a progress display.
type Progress struct {
	Files      atomic.Uint64
	Dirs       atomic.Uint64
	Bytes      atomic.Uint64
	Errors     atomic.Uint64
	Unchanged  atomic.Uint64
	TotalFiles atomic.Uint64 // files found so far by the walk
	TotalBytes atomic.Uint64
}

// ErrNoSources: none of the paths given to Snapshot exists; no snapshot
// is made.
var ErrNoSources = errors.New("none of the paths to back up can be read")

func sourceErrs(errs []SourceError) []error {
	out := make([]error, len(errs))
	for i, e := range errs {
		out[i] = e
	}
	return out
}

// SourceError is a path that could not be read; the backup goes on.
type SourceError struct {
	Path string
	Err  error
}

func (e SourceError) Error() string { return fmt.Sprintf("%s: %v", e.Path, e.Err) }

// Archiver saves paths into a repository.
type Archiver struct {
	repo   *repository.Repository
	opts   Options
	params chunker.Params
	secret [32]byte

	mu       sync.Mutex
	errs     []SourceError
	summary  repository.SnapshotSummary
	fatal    error
	cancel   context.CancelFunc
	blobSem  chan struct{}
	fileJobs chan func()      // run by a fixed set of file workers (Snapshot)
	dirSem   chan struct{}    // directories saved concurrently; beyond it, inline
	chunkers chan *fileWorker // one per large file being chunked
	chunks   chan []byte      // free chunk buffers (New)
}

// New returns an archiver writing to repo.
func New(repo *repository.Repository, opts Options) *Archiver {
	if opts.Progress == nil {
		opts.Progress = &Progress{}
	}
	n := runtime.GOMAXPROCS(0)
	a := &Archiver{
		repo:   repo,
		opts:   opts,
		params: repo.Config().Chunker,
		secret: repo.ChunkerSecret(),
		// One chunk in flight per core: more only adds live heap (a chunk,
		// its compressed form and its sealed copy each), which makes the
		// collector run and return pages more often under the soft memory
		// limit. On a 1 GiB file: 7.9 -> 6.4 s at the same peak RSS.
		blobSem:  make(chan struct{}, n),
		dirSem:   make(chan struct{}, 4*n),
		chunkers: make(chan *fileWorker, n),
		// A chunk buffer per chunk in flight and per file being chunked.
		// They are reused, each growing to the largest chunk it has held:
		// fresh memory for every chunk costs page faults and collections.
		chunks: make(chan []byte, 2*n),
	}
	for range n {
		a.chunkers <- &fileWorker{}
		a.chunks <- nil
		a.chunks <- nil
	}
	return a
}

// fileWorkers is how many files are read at once: small files cost
// mostly system calls, so more of them than cores keep the cores busy.
func fileWorkers() int { return max(8, 4*runtime.GOMAXPROCS(0)) }

// fileWorker chunks one large file at a time. Deriving the keyed chunker is
// costly, so it is reused; there are only as many as cores, which bounds
// the memory of their read buffers.
type fileWorker struct {
	ch *chunker.Chunker
}

// Errors returns the sources that could not be read.
func (a *Archiver) Errors() []SourceError {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]SourceError(nil), a.errs...)
}

// repoError marks an error of the repository (not of a source file): it
// aborts the backup instead of being reported as an unreadable source.
type repoError struct{ err error }

func (e repoError) Error() string { return e.err.Error() }
func (e repoError) Unwrap() error { return e.err }

func (a *Archiver) setFatal(err error) {
	a.mu.Lock()
	if a.fatal == nil {
		a.fatal = err
	}
	a.mu.Unlock()
	a.cancel()
}

func (a *Archiver) fatalErr() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.fatal
}

func (a *Archiver) reportError(path string, err error) {
	a.opts.Progress.Errors.Add(1)
	a.mu.Lock()
	a.errs = append(a.errs, SourceError{Path: path, Err: err})
	a.summary.Errors++
	a.mu.Unlock()
}

// vnode is a node of the virtual tree of parents of the backed-up paths.
type vnode struct {
	children map[string]*vnode
	target   bool // a path given by the user: walk it for real
}

// Snapshot backs up paths and returns the snapshot, not yet saved: the
// caller adds host and tags and calls repository.SaveSnapshot after Flush.
// Paths are stored under their absolute names, as restic does.
func (a *Archiver) Snapshot(ctx context.Context, paths []string) (*repository.Snapshot, error) {
	if len(paths) == 0 {
		return nil, errors.New("no paths to back up")
	}
	start := time.Now()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	a.cancel = cancel
	root := &vnode{children: map[string]*vnode{}}
	var abs []string
	found := 0
	for _, p := range paths {
		ap, err := filepath.Abs(p)
		if err != nil {
			return nil, fmt.Errorf("path %q: %w", p, err)
		}
		// Recorded even when missing, so the next backup of the same
		// paths finds this snapshot as its parent.
		abs = append(abs, ap)
		if _, err := os.Lstat(ap); err != nil {
			// A missing source is reported like an unreadable file: the
			// rest is backed up.
			var pe *fs.PathError
			if errors.As(err, &pe) {
				err = pe.Err // the path is the SourceError's
			}
			a.reportError(ap, err)
			continue
		}
		found++
		n := root
		for _, c := range strings.Split(strings.TrimPrefix(ap, "/"), "/") {
			if c == "" {
				continue
			}
			ch := n.children[c]
			if ch == nil {
				ch = &vnode{children: map[string]*vnode{}}
				n.children[c] = ch
			}
			n = ch
		}
		n.target = true
	}
	if found == 0 {
		return nil, fmt.Errorf("%w: %w", ErrNoSources, errors.Join(sourceErrs(a.Errors())...))
	}
	var parentRoot *repository.ID
	if a.opts.Parent != nil {
		parentRoot = &a.opts.Parent.Tree
	}
	a.repo.StartWriting(ctx)
	a.fileJobs = make(chan func(), 64)
	var workers sync.WaitGroup
	for range fileWorkers() {
		workers.Add(1)
		go func() {
			defer workers.Done()
			for job := range a.fileJobs {
				job()
			}
		}()
	}
	treeID, err := a.saveVirtual(ctx, "/", root, parentRoot)
	// Every entry saveVirtual started has finished (each directory waits
	// for its entries, also on error): no more file jobs can come.
	close(a.fileJobs)
	workers.Wait()
	if ferr := a.fatalErr(); ferr != nil {
		return nil, ferr
	}
	if err != nil {
		return nil, err
	}
	if err := a.repo.Flush(ctx); err != nil {
		return nil, err
	}
	st := a.repo.Stats()
	a.mu.Lock()
	sum := a.summary
	a.mu.Unlock()
	sum.BackupStart = start.UTC()
	sum.BackupEnd = time.Now().UTC()
	sum.DataBlobs = st.Blobs[repository.DataBlob]
	sum.TreeBlobs = st.Blobs[repository.TreeBlob]
	sum.DataAdded = st.BytesRaw
	sum.DataAddedPacked = st.BytesPacked
	sum.TotalFilesProcessed = a.opts.Progress.Files.Load()
	sum.TotalBytesProcessed = a.opts.Progress.Bytes.Load()
	sort.Strings(abs)
	snap := &repository.Snapshot{Time: start.UTC(), Tree: treeID, Paths: abs, Summary: &sum}
	if a.opts.Parent != nil {
		pid := a.opts.Parent.ID
		snap.Parent = &pid
	}
	return snap, nil
}

// loadParentTree returns the parent's tree or nil; damage is not fatal.
func (a *Archiver) loadParentTree(ctx context.Context, id *repository.ID) *repository.Tree {
	if id == nil {
		return nil
	}
	t, err := a.repo.LoadTree(ctx, *id)
	if err != nil {
		return nil
	}
	return t
}

func findNode(t *repository.Tree, name string) *repository.Node {
	if t == nil {
		return nil
	}
	i := sort.Search(len(t.Nodes), func(i int) bool { return string(t.Nodes[i].Name) >= name })
	if i < len(t.Nodes) && string(t.Nodes[i].Name) == name {
		return t.Nodes[i]
	}
	return nil
}

func (a *Archiver) saveVirtual(ctx context.Context, dir string, v *vnode, parent *repository.ID) (repository.ID, error) {
	ptree := a.loadParentTree(ctx, parent)
	tree := &repository.Tree{}
	names := make([]string, 0, len(v.children))
	for n := range v.children {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		ch := v.children[name]
		path := filepath.Join(dir, name)
		meta, err := fsmeta.LstatNoFileFlags(path) // saveEntry reads a file's flags
		if err != nil && !errors.Is(err, fsmeta.ErrIncomplete) {
			return repository.ID{}, fmt.Errorf("%s: %w", path, err)
		}
		pn := findNode(ptree, name)
		var psub *repository.ID
		if pn != nil {
			psub = pn.Subtree
		}
		if ch.target {
			node, err := a.saveEntry(ctx, path, name, meta, pn)
			if err != nil {
				return repository.ID{}, err
			}
			if node != nil {
				tree.Nodes = append(tree.Nodes, node.wait())
			}
			continue
		}
		if meta.Type == fsmeta.TypeSymlink {
			// A directory on the way to a target, reached through a
			// symlink (/var/run, a data disk linked in): the snapshot keeps
			// the path as given, with the metadata of the directory the
			// link leads to, as if the link were that directory.
			meta, err = followedDir(path)
			if err != nil {
				return repository.ID{}, err
			}
		}
		if meta.Type != fsmeta.TypeDir {
			return repository.ID{}, fmt.Errorf("%s: not a directory", path)
		}
		sub, err := a.saveVirtual(ctx, path, ch, psub)
		if err != nil {
			return repository.ID{}, err
		}
		tree.Nodes = append(tree.Nodes, &repository.Node{Name: []byte(name), Meta: *meta, Subtree: &sub})
	}
	tree.Sort()
	return a.repo.SaveTree(ctx, tree)
}

// followedDir returns the metadata of what the symlink at path leads to.
func followedDir(path string) (*fsmeta.Meta, error) {
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	meta, err := fsmeta.LstatNoFileFlags(real)
	if err != nil && !errors.Is(err, fsmeta.ErrIncomplete) {
		return nil, fmt.Errorf("%s (through its symlink to %s): %w", path, real, err)
	}
	return meta, nil
}

// futureNode is a node whose file content may still be being saved.
type futureNode struct {
	node *repository.Node
	done chan struct{}
}

func (f *futureNode) wait() *repository.Node {
	if f.done != nil {
		<-f.done
	}
	return f.node
}

func ready(n *repository.Node) *futureNode { return &futureNode{node: n} }

// saveEntry stores one entry of any type; nil means it was skipped.
func (a *Archiver) saveEntry(ctx context.Context, path, name string, meta *fsmeta.Meta, pn *repository.Node) (*futureNode, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if a.opts.Excludes != nil {
		switch a.opts.Excludes.ExcludeAction(path, meta.Type == fsmeta.TypeDir) {
		case filter.Skip:
			return nil, nil
		case filter.Descend:
			return a.saveExcludedDir(ctx, path, name, meta, pn)
		}
	}
	node := &repository.Node{Name: []byte(name), Meta: *meta}
	switch meta.Type {
	case fsmeta.TypeDir:
		return a.saveDirEntry(ctx, path, meta, pn, node)
	case fsmeta.TypeFile:
		return a.saveFileEntry(ctx, path, meta, pn, node)
	default:
		return ready(node), nil
	}
}

// parentSubtree returns the parent snapshot's subtree for a directory, if
// the parent had a directory there.
func parentSubtree(pn *repository.Node) *repository.ID {
	if pn != nil && pn.Type == fsmeta.TypeDir {
		return pn.Subtree
	}
	return nil
}

// saveExcludedDir handles a directory that is excluded but may hold
// re-included entries: a later "!" pattern may re-include something below
// (docs/filters.md), so it is read, each child deciding for itself, and the
// directory is kept only as the parent of what was re-included.
func (a *Archiver) saveExcludedDir(ctx context.Context, path, name string, meta *fsmeta.Meta, pn *repository.Node) (*futureNode, error) {
	skip, err := a.skipDir(path, meta)
	if err != nil {
		a.reportError(path, err)
	}
	if skip {
		return nil, nil
	}
	id, err := a.saveDir(ctx, path, meta, parentSubtree(pn))
	if err != nil {
		return nil, err
	}
	empty, err := (&repository.Tree{}).Encode()
	if err != nil {
		return nil, err
	}
	if id == a.repo.Hasher().Sum(empty) {
		return nil, nil // nothing below was re-included
	}
	a.opts.Progress.Dirs.Add(1)
	return ready(&repository.Node{Name: []byte(name), Meta: *meta, Subtree: &id}), nil
}

// saveDirEntry stores a directory, concurrently when a directory slot is
// free so that one directory's slow files do not idle the other workers.
func (a *Archiver) saveDirEntry(ctx context.Context, path string, meta *fsmeta.Meta, pn, node *repository.Node) (*futureNode, error) {
	skip, err := a.skipDir(path, meta)
	if err != nil {
		a.reportError(path, err)
	}
	if skip {
		return nil, nil
	}
	psub := parentSubtree(pn)
	select {
	case a.dirSem <- struct{}{}:
		f := &futureNode{node: node, done: make(chan struct{})}
		go func() {
			defer close(f.done)
			defer func() { <-a.dirSem }()
			id, err := a.saveDir(ctx, path, meta, psub)
			if err != nil {
				a.setFatal(err)
				f.node = nil
				return
			}
			node.Subtree = &id
			a.opts.Progress.Dirs.Add(1)
		}()
		return f, nil
	default:
	}
	id, err := a.saveDir(ctx, path, meta, psub)
	if err != nil {
		return nil, err
	}
	node.Subtree = &id
	a.opts.Progress.Dirs.Add(1)
	return ready(node), nil
}

// saveFileEntry stores a regular file: unchanged since the parent snapshot,
// it reuses the parent's content; otherwise a file worker reads it.
func (a *Archiver) saveFileEntry(ctx context.Context, path string, meta *fsmeta.Meta, pn, node *repository.Node) (*futureNode, error) {
	a.opts.Progress.TotalFiles.Add(1)
	a.opts.Progress.TotalBytes.Add(uint64(meta.Size)) // #nosec G115 -- meta.Size is st_size of a regular file from lstat, never negative
	if pn != nil && pn.Type == fsmeta.TypeFile && pn.SameContent(meta) && a.allBlobsKnown(pn) {
		// chattr changes the ctime, so the parent's flags are current.
		node.Flags = pn.Flags
		node.Content = pn.Content
		a.opts.Progress.Files.Add(1)
		a.opts.Progress.Unchanged.Add(1)
		a.opts.Progress.Bytes.Add(uint64(meta.Size)) // #nosec G115 -- meta.Size is st_size of a regular file from lstat, never negative
		a.mu.Lock()
		a.summary.FilesUnmodified++
		a.mu.Unlock()
		if a.opts.OnFile != nil {
			a.opts.OnFile(path, FileUnchanged)
		}
		return ready(node), nil
	}
	f := &futureNode{node: node, done: make(chan struct{})}
	job := func() {
		defer close(f.done)
		if !a.readFileInto(ctx, path, node) {
			f.node = nil
			return
		}
		a.opts.Progress.Files.Add(1)
		a.mu.Lock()
		if pn != nil {
			a.summary.FilesChanged++
		} else {
			a.summary.FilesNew++
		}
		a.mu.Unlock()
		if a.opts.OnFile != nil {
			st := FileNew
			if pn != nil {
				st = FileChanged
			}
			a.opts.OnFile(path, st)
		}
	}
	select {
	case a.fileJobs <- job:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return f, nil
}

// readFileInto stores the file's content and fills node's content, size
// and flags; it reports false when the file is left out, after recording
// why (a repository failure is fatal, an unreadable file is reported).
func (a *Archiver) readFileInto(ctx context.Context, path string, node *repository.Node) bool {
	content, size, flags, err := a.saveFile(ctx, path)
	if err != nil {
		var re repoError
		switch {
		case errors.As(err, &re):
			a.setFatal(re.err)
		case ctx.Err() == nil:
			a.reportError(path, err)
		}
		return false
	}
	node.Content = content
	node.Size = size
	node.Flags = flags
	return true
}

func (a *Archiver) allBlobsKnown(n *repository.Node) bool {
	idx := a.repo.Index()
	for _, c := range n.Content {
		if c.ID != nil && !idx.Has(repository.BlobHandle{Type: repository.DataBlob, ID: *c.ID}) {
			return false
		}
	}
	return true
}

func (a *Archiver) skipDir(path string, meta *fsmeta.Meta) (bool, error) {
	if a.opts.ExcludeCaches {
		if ok, err := filter.IsCacheDir(path); err != nil || ok {
			return ok, err
		}
	}
	if len(a.opts.ExcludeIfPresent) > 0 {
		if ok, err := filter.HasMarker(path, a.opts.ExcludeIfPresent); err != nil || ok {
			return ok, err
		}
	}
	return false, nil
}

func (a *Archiver) saveDir(ctx context.Context, path string, meta *fsmeta.Meta, parent *repository.ID) (repository.ID, error) {
	return a.saveDirOn(ctx, path, meta.Device, parent)
}

func (a *Archiver) saveDirOn(ctx context.Context, path string, dev uint64, parent *repository.ID) (repository.ID, error) {
	ptree := a.loadParentTree(ctx, parent)
	entries, err := os.ReadDir(path)
	tree := &repository.Tree{}
	if err != nil {
		a.reportError(path, err)
	}
	var futures []*futureNode
	for _, e := range entries {
		name := e.Name()
		p := filepath.Join(path, name)
		meta, err := fsmeta.LstatNoFileFlags(p) // saveEntry reads a file's flags
		if err != nil && !errors.Is(err, fsmeta.ErrIncomplete) {
			a.reportError(p, err)
			continue
		}
		if err != nil {
			a.reportError(p, err) // metadata partly unreadable; entry kept
		}
		if a.opts.OneFileSystem && meta.Type == fsmeta.TypeDir && meta.Device != dev {
			continue
		}
		f, err := a.saveEntry(ctx, p, name, meta, findNode(ptree, name))
		if err != nil {
			// Nothing may still run when the walk returns: Snapshot then
			// stops the file workers.
			for _, f := range futures {
				f.wait()
			}
			return repository.ID{}, err
		}
		if f != nil {
			futures = append(futures, f)
		}
	}
	for _, f := range futures {
		if n := f.wait(); n != nil {
			tree.Nodes = append(tree.Nodes, n)
		}
	}
	if err := ctx.Err(); err != nil {
		return repository.ID{}, err
	}
	tree.Sort()
	a.mu.Lock()
	if parent == nil {
		a.summary.DirsNew++
	} else {
		a.summary.DirsChanged++ // refined below when the tree is identical
	}
	a.mu.Unlock()
	id, err := a.repo.SaveTree(ctx, tree)
	if err == nil && parent != nil && id == *parent {
		a.mu.Lock()
		a.summary.DirsChanged--
		a.summary.DirsUnmodified++
		a.mu.Unlock()
	}
	return id, err
}

// saveFile chunks a regular file and stores its blobs; all-zero chunks and
// holes become hole items so sparse files stay sparse. It also returns the
// file's size and inode flags, read from the descriptor it opened.
func (a *Archiver) saveFile(ctx context.Context, path string) ([]repository.ContentItem, int64, uint32, error) {
	f, err := openSource(path)
	if err != nil {
		return nil, 0, 0, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, 0, 0, err
	}
	if !fi.Mode().IsRegular() {
		return nil, 0, 0, fmt.Errorf("changed type during backup")
	}
	flags := fsmeta.FileFlags(f)
	size := fi.Size()
	if size <= int64(a.params.Min) {
		items, n, err := a.saveSmallFile(ctx, f, size)
		return items, n, flags, err
	}
	items, err := a.saveLargeFile(ctx, f, size)
	return items, size, flags, err
}

// saveSmallFile stores a file no larger than the chunker's minimum, which is
// always one chunk: it is read whole, with no chunker and no hole search. A
// file that shrank meanwhile is stored as read; its size is what was read.
func (a *Archiver) saveSmallFile(ctx context.Context, f *os.File, size int64) ([]repository.ContentItem, int64, error) {
	if size == 0 {
		return nil, 0, nil
	}
	buf := bufpool.Get(int(size))[:size]
	defer bufpool.Put(buf) // SaveBlob keeps no reference to it
	n, err := f.ReadAt(buf, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, 0, err
	}
	data := buf[:n]
	a.opts.Progress.Bytes.Add(uint64(n)) // #nosec G115 -- n is a byte count, not negative
	if n == 0 {
		return nil, 0, nil
	}
	if fsmeta.IsZero(data) {
		return []repository.ContentItem{{Hole: uint64(n)}}, int64(n), nil // #nosec G115 -- n is a byte count, not negative
	}
	id, _, err := a.repo.SaveBlob(ctx, repository.DataBlob, data)
	if err != nil {
		return nil, 0, repoError{err}
	}
	return []repository.ContentItem{{ID: &id, Size: uint64(n)}}, int64(n), nil // #nosec G115 -- n is a byte count, not negative
}

// saveLargeFile chunks f and saves its chunks concurrently.
func (a *Archiver) saveLargeFile(ctx context.Context, f *os.File, size int64) ([]repository.ContentItem, error) {
	regions, err := fsmeta.DataRegions(f, size)
	if err != nil {
		regions = []fsmeta.Region{{Offset: 0, Length: size}}
	}
	var w *fileWorker
	select {
	case w = <-a.chunkers:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { a.chunkers <- w }()
	if w.ch == nil {
		w.ch = chunker.New(nil, a.secret, a.params)
	}
	// Each data item gets its own ID cell before its goroutine starts, so
	// the goroutines never touch the slices that grow here.
	var items []repository.ContentItem
	g, gctx := errgroup.WithContext(ctx)
	ch := w.ch
	var pos int64
	addHole := func(n int64) {
		if n <= 0 {
			return
		}
		if l := len(items); l > 0 && items[l-1].Hole > 0 {
			items[l-1].Hole += uint64(n)
			return
		}
		items = append(items, repository.ContentItem{Hole: uint64(n)})
	}
	for _, rg := range regions {
		if rg.Offset > pos {
			addHole(rg.Offset - pos)
		}
		ch.Reset(io.NewSectionReader(f, rg.Offset, rg.Length))
		for {
			var buf []byte
			select {
			case buf = <-a.chunks:
			case <-gctx.Done():
				if err := g.Wait(); err != nil {
					return nil, err
				}
				return nil, gctx.Err()
			}
			chunk, err := ch.Next(buf[:0])
			if err != nil {
				a.chunks <- buf
				if err == io.EOF {
					break
				}
				_ = g.Wait()
				return nil, err
			}
			a.opts.Progress.Bytes.Add(uint64(len(chunk)))
			if fsmeta.IsZero(chunk) {
				a.chunks <- chunk[:0]
				addHole(int64(len(chunk)))
				continue
			}
			cell := new(repository.ID)
			items = append(items, repository.ContentItem{ID: cell, Size: uint64(len(chunk))})
			select {
			case a.blobSem <- struct{}{}:
			case <-gctx.Done():
				a.chunks <- chunk[:0]
				if err := g.Wait(); err != nil {
					return nil, err
				}
				return nil, gctx.Err()
			}
			g.Go(func() error {
				defer func() {
					<-a.blobSem
					a.chunks <- chunk[:0] // SaveBlob keeps no reference to it
				}()
				id, _, err := a.repo.SaveBlob(gctx, repository.DataBlob, chunk)
				if err != nil {
					return repoError{err}
				}
				*cell = id
				return nil
			})
		}
		pos = rg.Offset + rg.Length
	}
	if pos < size {
		addHole(size - pos)
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return items, nil
}

// openSource opens a file to back up without following a symlink and, where
// allowed (owner or root), without touching its atime. It calls open(2)
// itself: os.OpenFile would also try to register the file with the network
// poller, several more system calls per file. The open never blocks
// (O_NONBLOCK): a regular file swapped for a FIFO after the walk saw it
// opens at once, and saveFile refuses it by its type; for the regular
// files it reads, O_NONBLOCK changes nothing, so it is left set.
func openSource(path string) (*os.File, error) {
	flags := unix.O_RDONLY | unix.O_NOFOLLOW | unix.O_CLOEXEC | unix.O_NOATIME | unix.O_NONBLOCK | unix.O_NOCTTY
	for {
		fd, err := unix.Open(path, flags, 0)
		switch {
		case err == nil:
			return os.NewFile(uintptr(fd), path), nil // #nosec G115 -- open(2) returned a non-negative descriptor
		case errors.Is(err, unix.EPERM) && flags&unix.O_NOATIME != 0:
			flags &^= unix.O_NOATIME
		case !errors.Is(err, unix.EINTR):
			return nil, &os.PathError{Op: "open", Path: path, Err: err}
		}
	}
}
