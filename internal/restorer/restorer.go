// Package restorer writes a snapshot's tree back to disk: in parallel, never
// outside the target, resuming over files already correct, optionally verified.
package restorer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/coffer-backup/coffer/internal/bufpool"
	"github.com/coffer-backup/coffer/internal/filter"
	"github.com/coffer-backup/coffer/internal/fsmeta"
	"github.com/coffer-backup/coffer/internal/repository"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"
)

// Options configure a restore.
type Options struct {
	Target   string
	Include  *filter.Matcher // nil: everything
	Exclude  *filter.Matcher // nil: nothing
	Verify   bool            // re-read every restored file and check its blobs
	Workers  int             // parallel file writers; 0: a default
	Progress *Progress
	// Apply controls metadata restoration (ownership by name, strictness).
	Apply fsmeta.ApplyOptions
	// Safe restores files of someone else without their privileges: no
	// device nodes (skipped with a warning), no setuid or setgid bits, no
	// security.* (file capabilities, labels) or trusted.* xattrs, no
	// immutable or append-only flags, everything owned by the restoring
	// user. Progress.Safe counts what was left out. The zero value restores
	// all metadata exactly, as a full-system restore needs.
	Safe bool
}

// Progress counts what has been restored. Files are regular files, each
// name of a hardlinked file counted, as a backup counts them; symlinks,
// devices and FIFOs are Others.
type Progress struct {
	Files   atomic.Uint64
	Bytes   atomic.Uint64
	Skipped atomic.Uint64 // files already correct on disk
	Others  atomic.Uint64
	Errors  atomic.Uint64
	// TotalFiles and TotalBytes are what the walk has selected so far:
	// the totals once it is done, which is well before the last file.
	TotalFiles atomic.Uint64
	TotalBytes atomic.Uint64
	// Safe counts what Options.Safe left out.
	Safe SafeCounts
}

// Error is one entry that could not be restored; the restore goes on.
type Error struct {
	Path string
	Err  error
}

func (e Error) Error() string { return fmt.Sprintf("%s: %v", e.Path, e.Err) }

// Restorer restores one snapshot.
type Restorer struct {
	repo *repository.Repository
	opts Options

	mu    sync.Mutex // guards errs and warns, which workers append to
	errs  []Error
	warns []Error

	uid, gid uint32 // the restoring user, who owns everything with Options.Safe

	// Only the walk touches these, before the workers are waited for.
	hardlinks map[[2]uint64]string // first path restored per inode
	links     []link               // later paths, linked after all files
	dirs      []entry              // directories, their metadata applied last
	// includeUsed[i]: include pattern i selected something.
	includeUsed []bool
	budget      repository.WalkBudget
}

// New returns a restorer.
func New(repo *repository.Repository, opts Options) *Restorer {
	if opts.Workers <= 0 {
		opts.Workers = max(4, 2*runtime.GOMAXPROCS(0))
	}
	if opts.Progress == nil {
		opts.Progress = &Progress{}
	}
	uid, gid := restoringUser()
	return &Restorer{repo: repo, opts: opts, hardlinks: map[[2]uint64]string{},
		includeUsed: make([]bool, len(opts.Include.Patterns())), uid: uid, gid: gid}
}

// UnmatchedIncludes returns, after Restore, the include patterns (not the
// negated ones) that selected nothing: most likely a wrong path or the
// wrong snapshot.
func (r *Restorer) UnmatchedIncludes() []string {
	var out []string
	for i, p := range r.opts.Include.Patterns() {
		if !r.includeUsed[i] && !r.opts.Include.Negated(i) {
			out = append(out, p)
		}
	}
	return out
}

// Errors returns the entries that failed.
func (r *Restorer) Errors() []Error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Error(nil), r.errs...)
}

// Warnings returns what was left out on purpose (with Options.Safe, the
// device nodes not created); the restore of everything else succeeded.
func (r *Restorer) Warnings() []Error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Error(nil), r.warns...)
}

func (r *Restorer) warn(path string, err error) {
	r.mu.Lock()
	r.warns = append(r.warns, Error{Path: path, Err: err})
	r.mu.Unlock()
}

func (r *Restorer) fail(path string, err error) {
	r.opts.Progress.Errors.Add(1)
	r.mu.Lock()
	r.errs = append(r.errs, Error{Path: path, Err: err})
	r.mu.Unlock()
}

// Restore writes the tree rooted at tree below the target directory. It
// returns an error only for failures that stop the whole restore; per-entry
// failures are collected in Errors.
func (r *Restorer) Restore(ctx context.Context, tree repository.ID) error {
	target, err := filepath.Abs(r.opts.Target)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(target, 0o700); err != nil {
		return fmt.Errorf("create target: %w", err)
	}
	// A fixed set of workers takes the files the walk finds: a goroutine
	// per file would grow a fresh stack for each of them.
	g, gctx := errgroup.WithContext(ctx)
	jobs := make(chan func() error, 4*r.opts.Workers)
	for range r.opts.Workers {
		g.Go(func() error {
			for job := range jobs {
				if err := job(); err != nil {
					return err
				}
			}
			return nil
		})
	}
	werr := r.walk(gctx, jobs, target, "", tree)
	close(jobs)
	if err := g.Wait(); err != nil {
		return err
	}
	if werr != nil {
		return werr
	}
	// Hardlinks once every first copy is complete.
	for _, l := range r.links {
		if err := ctx.Err(); err != nil {
			return err
		}
		r.makeLink(l)
	}
	// Directory metadata last, deepest first, so their times survive.
	for i := len(r.dirs) - 1; i >= 0; i-- {
		if err := ctx.Err(); err != nil {
			return err
		}
		d := r.dirs[i]
		if err := fsmeta.Apply(d.path, r.meta(&d.node.Meta), r.opts.Apply); err != nil {
			r.fail(d.path, err)
		}
	}
	return ctx.Err()
}

// selected applies include/exclude filters to a snapshot path ("/a/b").
func (r *Restorer) selected(p string, isDir bool) (include, descend bool) {
	if r.opts.Exclude != nil && r.opts.Exclude.Match(p) {
		return false, false
	}
	if r.opts.Include == nil {
		return true, true
	}
	if i := r.opts.Include.MatchedBy(p); i >= 0 {
		r.includeUsed[i] = true
		return true, true
	}
	if isDir && r.opts.Include.ChildMayMatch(p) {
		return false, true
	}
	return false, false
}

// entry is a node to restore and its absolute path.
type entry struct {
	path string
	node *repository.Node
}

// link is a hardlink to make once every file is written.
type link struct{ path, first string }

// walk restores the tree's entries into dir (an absolute path inside the
// target). Node names were validated by repository.DecodeTree: no "/", no
// "..", no NUL, so joined paths cannot leave the target.
//
// All files and special entries of one directory go to one worker, which
// creates them in order: creating files in one directory from several
// threads makes them queue on that directory's lock in the kernel, and the
// waiters spin (6% of all CPU samples of a 100k-small-files restore).
// Workers therefore take different directories; a large file's blobs are
// still loaded in parallel.
func (r *Restorer) walk(ctx context.Context, jobs chan<- func() error, dir, snapPath string, id repository.ID) error {
	tree, err := r.loadTree(ctx, dir, id)
	if tree == nil {
		return err
	}
	type subdir struct {
		path, snapPath string
		node           *repository.Node
		include        bool
	}
	var batch []entry
	var subdirs []subdir
	for _, n := range tree.Nodes {
		if !repository.ValidName(n.Name) {
			return fmt.Errorf("%w: unsafe name %q", repository.ErrBadTree, n.Name)
		}
		name := string(n.Name)
		path := dir + "/" + name
		sp := snapPath + "/" + name
		if err := repository.CheckPath(sp); err != nil {
			r.fail(dir, err)
			continue
		}
		include, descend := r.selected(sp, n.Type == fsmeta.TypeDir)
		if !include && !descend {
			continue
		}
		if n.Type == fsmeta.TypeDir {
			if err := ensureDir(path); err != nil {
				r.fail(path, err)
				continue
			}
			subdirs = append(subdirs, subdir{path, sp, n, include})
			continue
		}
		if !include {
			continue
		}
		if n.Type == fsmeta.TypeFile {
			r.opts.Progress.TotalFiles.Add(1)
		}
		if r.linkLater(path, n) {
			continue
		}
		if n.Type == fsmeta.TypeFile {
			r.opts.Progress.TotalBytes.Add(uint64(max(n.Size, 0))) // #nosec G115 -- clamped at 0
		}
		batch = append(batch, entry{path: path, node: n})
	}
	if len(batch) > 0 {
		job := func() error { return r.restoreEntries(ctx, batch) }
		select {
		case jobs <- job:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	for _, d := range subdirs {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := r.walk(ctx, jobs, d.path, d.snapPath, *d.node.Subtree); err != nil {
			return err
		}
		if d.include {
			r.dirs = append(r.dirs, entry{path: d.path, node: d.node})
		}
	}
	return nil
}

// loadTree loads the tree of directory dir and charges it to the walk's
// budget. A tree that cannot be loaded is reported and gives nil, nil: the
// rest of the restore goes on. Identical directories share a tree, but a
// tree repeated beyond the budget is a bomb, and stops the restore.
func (r *Restorer) loadTree(ctx context.Context, dir string, id repository.ID) (*repository.Tree, error) {
	tree, err := r.repo.LoadTree(ctx, id)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		r.fail(dir, fmt.Errorf("load tree: %w", err))
		return nil, nil
	}
	if err := r.budget.Visit(id, len(tree.Nodes)); err != nil {
		return nil, err
	}
	return tree, nil
}

// linkLater reports whether path is a further name of a file restored
// under another path, and queues the hardlink made once every file is
// written.
func (r *Restorer) linkLater(path string, n *repository.Node) bool {
	if n.Type != fsmeta.TypeFile || n.Links <= 1 {
		return false
	}
	key := [2]uint64{n.Device, n.Inode}
	if first, seen := r.hardlinks[key]; seen {
		r.links = append(r.links, link{path: path, first: first})
		return true
	}
	r.hardlinks[key] = path
	return false
}

// restoreEntries restores one directory's files and special entries in order.
func (r *Restorer) restoreEntries(ctx context.Context, batch []entry) error {
	for _, e := range batch {
		if err := ctx.Err(); err != nil {
			return err
		}
		var err error
		if e.node.Type == fsmeta.TypeFile {
			err = r.restoreFile(ctx, e.path, e.node)
		} else {
			err = r.restoreSpecial(e.path, e.node)
		}
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			r.fail(e.path, err)
		}
	}
	return nil
}

// ensureDir makes path a real directory, replacing whatever non-directory
// (a symlink planted to escape the target, say) is there.
func ensureDir(path string) error {
	err := os.Mkdir(path, 0o700)
	if err == nil || !errors.Is(err, os.ErrExist) {
		return err
	}
	fi, err := os.Lstat(path)
	if err != nil {
		return err
	}
	if fi.IsDir() {
		return nil
	}
	if err := os.Remove(path); err != nil {
		return err
	}
	if err := os.Mkdir(path, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return err
	}
	return nil
}

func removeExisting(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if fi.IsDir() {
		return os.RemoveAll(path)
	}
	return os.Remove(path)
}

// ErrSafeSkipped is the warning for an entry Options.Safe does not create.
var ErrSafeSkipped = errors.New("device node not restored (safe restore)")

func (r *Restorer) restoreSpecial(path string, n *repository.Node) error {
	if r.opts.Safe && isDevice(n.Type) {
		r.opts.Progress.Safe.Devices.Add(1)
		r.warn(path, ErrSafeSkipped)
		return nil
	}
	if err := removeExisting(path); err != nil {
		return err
	}
	if n.Type == fsmeta.TypeSocket {
		return nil // sockets belong to running programs; not recreated
	}
	if err := fsmeta.Create(path, &n.Meta); err != nil {
		return err
	}
	if err := fsmeta.Apply(path, r.meta(&n.Meta), r.opts.Apply); err != nil {
		return err
	}
	r.opts.Progress.Others.Add(1)
	return nil
}

// makeLink makes path a hardlink to first, which is already restored.
func (r *Restorer) makeLink(l link) {
	if err := removeExisting(l.path); err != nil {
		r.fail(l.path, err)
		return
	}
	if err := os.Link(l.first, l.path); err != nil {
		r.fail(l.path, fmt.Errorf("hardlink to %s: %w", l.first, err))
		return
	}
	r.opts.Progress.Files.Add(1)
}

// fileIsCorrect reports whether path already holds exactly n's content.
// Only a regular file is opened, and never by an open that can block: a
// FIFO or device where the file belongs is not it (the caller replaces
// it), and opening one could hang the restore or act on the device.
func (r *Restorer) fileIsCorrect(ctx context.Context, path string, n *repository.Node) bool {
	if fi, err := os.Lstat(path); err != nil || !fi.Mode().IsRegular() || fi.Size() != n.Size {
		return false
	}
	f, err := openExisting(path)
	if err != nil {
		return false
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() || fi.Size() != n.Size {
		return false
	}
	return r.compareContent(ctx, f, n) == nil
}

// openExisting opens path for reading without following a symlink and
// without blocking (O_NONBLOCK: a FIFO swapped in after the caller's check
// opens at once, and its type is then checked on the descriptor). The
// reads of a regular file do not depend on O_NONBLOCK.
func openExisting(path string) (*os.File, error) {
	for {
		fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
		if err == nil {
			return os.NewFile(uintptr(fd), path), nil // #nosec G115 -- open(2) returned a non-negative descriptor
		}
		if !errors.Is(err, unix.EINTR) {
			return nil, &os.PathError{Op: "open", Path: path, Err: err}
		}
	}
}

// compareContent reads f and checks it against the node's content list.
// Holes are checked by seeking (checkZero), not by reading them.
func (r *Restorer) compareContent(ctx context.Context, f *os.File, n *repository.Node) error {
	h := r.repo.Hasher()
	var off int64
	buf := make([]byte, 0, 1<<20)
	for _, c := range n.Content {
		if err := ctx.Err(); err != nil {
			return err
		}
		if c.Hole > 0 {
			hole, err := holeLen(c)
			if err != nil {
				return err
			}
			if err := checkZero(ctx, f, off, hole); err != nil {
				return err
			}
			off += hole
			continue
		}
		size, err := blobLen(c)
		if err != nil {
			return err
		}
		if cap(buf) < size {
			buf = make([]byte, size)
		}
		b := buf[:size]
		if _, err := f.ReadAt(b, off); err != nil {
			return fmt.Errorf("read back at %d: %w", off, err)
		}
		if h.Sum(b) != *c.ID {
			return fmt.Errorf("content at offset %d differs from the snapshot", off)
		}
		off += int64(size)
	}
	var one [1]byte
	if _, err := f.ReadAt(one[:], off); err != io.EOF {
		return fmt.Errorf("file longer than in the snapshot")
	}
	return nil
}

// holeLen returns a hole item's length, rejecting one no file can have.
func holeLen(c repository.ContentItem) (int64, error) {
	if c.Hole > math.MaxInt64 {
		return 0, fmt.Errorf("%w: hole of %d bytes", repository.ErrBadTree, c.Hole)
	}
	return int64(c.Hole), nil
}

// blobLen returns a blob item's length, rejecting one above MaxBlobSize.
func blobLen(c repository.ContentItem) (int, error) {
	if c.Size > repository.MaxBlobSize {
		return 0, fmt.Errorf("%w: blob of %d bytes exceeds the maximum %d", repository.ErrBadTree, c.Size, repository.MaxBlobSize)
	}
	return int(c.Size), nil
}

// checkZero checks that [off, off+n) of f reads as zeros. It reads only
// what the filesystem stores there: SEEK_DATA skips holes, so a 1 TiB hole
// costs a few system calls. Where the filesystem cannot tell, every byte
// is data and is read.
func checkZero(ctx context.Context, f *os.File, off, n int64) error {
	end := off + n
	for off < end {
		data, err := f.Seek(off, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) {
			return nil // only a hole from off to the end of the file
		}
		if err != nil {
			data = off // no SEEK_DATA here: read everything
		}
		if data >= end {
			return nil
		}
		stop := end
		if hole, err := f.Seek(data, unix.SEEK_HOLE); err == nil && hole < end {
			stop = hole
		}
		if err := readZeros(ctx, f, data, stop-data); err != nil {
			return err
		}
		off = stop
	}
	return nil
}

// readZeros reads [off, off+n) of f and checks that it is all zeros.
func readZeros(ctx context.Context, f *os.File, off, n int64) error {
	buf := make([]byte, min(n, 1<<20))
	for n > 0 {
		if err := ctx.Err(); err != nil {
			return err
		}
		k := min(n, int64(len(buf)))
		if _, err := f.ReadAt(buf[:k], off); err != nil {
			return err
		}
		if !fsmeta.IsZero(buf[:k]) {
			return fmt.Errorf("expected zeros at offset %d", off)
		}
		off += k
		n -= k
	}
	return nil
}

type blobResult struct {
	data []byte
	err  error
}

// loadBlob loads a data blob of size bytes into a recycled buffer; hand
// the result to bufpool.Put once it is written.
func (r *Restorer) loadBlob(ctx context.Context, id repository.ID, size int) ([]byte, error) {
	return r.repo.LoadBlobInto(ctx, repository.DataBlob, id, bufpool.Get(size))
}

// prefetchWindow is how many blobs of one file are loaded ahead of the
// writer, so a large file is decrypted and decompressed on several cores.
const prefetchWindow = 6

// prefetch loads the file's blobs concurrently, at most prefetchWindow
// ahead of the consumer, each delivered on its own buffered channel (holes
// get none). The consumer calls release after taking each result; cancel
// ctx to stop early.
func (r *Restorer) prefetch(ctx context.Context, content []repository.ContentItem) (results []chan blobResult, release func()) {
	results = make([]chan blobResult, len(content))
	sem := make(chan struct{}, prefetchWindow)
	for i, c := range content {
		if c.ID != nil {
			results[i] = make(chan blobResult, 1)
		}
	}
	go func() {
		for i, c := range content {
			if c.ID == nil {
				continue
			}
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return
			}
			go func() {
				size, err := blobLen(c)
				var data []byte
				if err == nil {
					data, err = r.loadBlob(ctx, *c.ID, size)
				}
				results[i] <- blobResult{data, err}
			}()
		}
	}()
	return results, func() { <-sem }
}

// createFile creates path for writing, exclusively. ok is false when path
// already held the right content: it was left alone and its metadata set.
func (r *Restorer) createFile(ctx context.Context, path string, n *repository.Node) (f *os.File, ok bool, err error) {
	f, err = createExcl(path)
	if !errors.Is(err, os.ErrExist) {
		return f, false, err
	}
	if r.fileIsCorrect(ctx, path, n) {
		r.opts.Progress.Skipped.Add(1)
		r.opts.Progress.Files.Add(1)
		r.opts.Progress.Bytes.Add(uint64(n.Size)) // #nosec G115 -- fileIsCorrect matched n.Size to the file's st_size, so it is not negative
		return nil, true, fsmeta.Apply(path, r.meta(&n.Meta), r.opts.Apply)
	}
	if err := removeExisting(path); err != nil {
		return nil, false, err
	}
	f, err = createExcl(path)
	return f, false, err
}

// createExcl creates path exclusively, not following a symlink, mode 0600.
// It calls open(2) itself: os.OpenFile would also try to register the file
// with the network poller, several more system calls per restored file.
func createExcl(path string) (*os.File, error) {
	for {
		fd, err := unix.Open(path, unix.O_RDWR|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
		if err == nil {
			return os.NewFile(uintptr(fd), path), nil // #nosec G115 -- open(2) returned a non-negative descriptor
		}
		if !errors.Is(err, unix.EINTR) {
			return nil, &os.PathError{Op: "open", Path: path, Err: err}
		}
	}
}

func (r *Restorer) restoreFile(ctx context.Context, path string, n *repository.Node) error {
	f, skipped, err := r.createFile(ctx, path, n)
	if skipped || err != nil {
		return err
	}
	err = r.writeContent(ctx, f, n)
	if err == nil && r.opts.Verify {
		if err = r.compareContent(ctx, f, n); err != nil {
			err = fmt.Errorf("verify: %w", err)
		}
	}
	if err != nil {
		return discard(f, path, err)
	}
	aerr := fsmeta.ApplyFile(f, path, r.meta(&n.Meta), r.opts.Apply)
	if err := f.Close(); err != nil {
		return err
	}
	r.opts.Progress.Files.Add(1)
	return aerr
}

// discard closes and removes the file f at path, whose content could not
// be written or verified, so no partial file is left under the name of a
// restored one: cause is returned, saying so.
func discard(f *os.File, path string, cause error) error {
	_ = f.Close()
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("%w (the incomplete file could not be removed: %v)", cause, err)
	}
	return fmt.Errorf("%w (the incomplete file was removed)", cause)
}

// writeContent writes n's content into the new, empty file f.
func (r *Restorer) writeContent(ctx context.Context, f *os.File, n *repository.Node) error {
	sw := fsmeta.NewSparseWriter(f)
	blobs := 0
	for _, c := range n.Content {
		if c.ID != nil {
			blobs++
		}
	}
	var results []chan blobResult
	release := func() {}
	if blobs > 1 {
		pctx, cancel := context.WithCancel(ctx)
		defer cancel()
		results, release = r.prefetch(pctx, n.Content)
	}
	trailingHole := false
	for i, c := range n.Content {
		if err := ctx.Err(); err != nil {
			return err
		}
		if c.Hole > 0 {
			hole, err := holeLen(c)
			if err != nil {
				return err
			}
			if err := sw.WriteHole(hole); err != nil {
				return err
			}
			trailingHole = true
			continue
		}
		if c.ID == nil {
			return fmt.Errorf("%w: content item with neither blob nor hole", repository.ErrBadTree)
		}
		var data []byte
		var err error
		if results != nil {
			res := <-results[i]
			release()
			data, err = res.data, res.err
		} else {
			var size int
			if size, err = blobLen(c); err == nil {
				data, err = r.loadBlob(ctx, *c.ID, size)
			}
		}
		if err != nil {
			return err
		}
		if uint64(len(data)) != c.Size {
			return fmt.Errorf("blob %s has %d bytes, tree says %d", c.ID.Short(), len(data), c.Size)
		}
		if _, err := sw.Write(data); err != nil {
			return err
		}
		bufpool.Put(data)
		trailingHole = false
		r.opts.Progress.Bytes.Add(uint64(len(data)))
	}
	if sw.Offset() != n.Size {
		return fmt.Errorf("content adds up to %d bytes, the snapshot says %d", sw.Offset(), n.Size)
	}
	if trailingHole {
		// Only a trailing hole leaves the new file shorter than its size.
		return sw.Finish()
	}
	return nil
}
