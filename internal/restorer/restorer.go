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
}

// Progress counts what has been restored.
type Progress struct {
	Files   atomic.Uint64
	Bytes   atomic.Uint64
	Skipped atomic.Uint64 // files already correct on disk
	Errors  atomic.Uint64
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

	mu        sync.Mutex
	errs      []Error
	hardlinks map[[2]uint64]string
	dirs      []dirMeta

	doneMu   sync.Mutex
	doneCond *sync.Cond
	inflight map[string]bool
}

type dirMeta struct {
	path string
	node *repository.Node
}

// New returns a restorer.
func New(repo *repository.Repository, opts Options) *Restorer {
	if opts.Workers <= 0 {
		opts.Workers = max(4, 2*runtime.GOMAXPROCS(0))
	}
	if opts.Progress == nil {
		opts.Progress = &Progress{}
	}
	r := &Restorer{repo: repo, opts: opts, hardlinks: map[[2]uint64]string{}, inflight: map[string]bool{}}
	r.doneCond = sync.NewCond(&r.doneMu)
	return r
}

// Errors returns the entries that failed.
func (r *Restorer) Errors() []Error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Error(nil), r.errs...)
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
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(r.opts.Workers)
	if err := r.walk(gctx, g, target, "", tree); err != nil {
		_ = g.Wait()
		return err
	}
	if err := g.Wait(); err != nil {
		return err
	}
	// Directory metadata last, deepest first, so their times survive.
	for i := len(r.dirs) - 1; i >= 0; i-- {
		d := r.dirs[i]
		if err := fsmeta.Apply(d.path, &d.node.Meta, r.opts.Apply); err != nil {
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
	if r.opts.Include.Match(p) {
		return true, true
	}
	if isDir && r.opts.Include.ChildMayMatch(p) {
		return false, true
	}
	return false, false
}

// walk restores the tree's entries into dir (an absolute path inside the
// target). Node names were validated by repository.DecodeTree: no "/", no
// "..", no NUL, so joined paths cannot leave the target.
func (r *Restorer) walk(ctx context.Context, g *errgroup.Group, dir, snapPath string, id repository.ID) error {
	tree, err := r.repo.LoadTree(ctx, id)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		r.fail(dir, fmt.Errorf("load tree: %w", err))
		return nil
	}
	for _, n := range tree.Nodes {
		if !repository.ValidName(n.Name) {
			return fmt.Errorf("%w: unsafe name %q", repository.ErrBadTree, n.Name)
		}
		name := string(n.Name)
		path := dir + "/" + name
		sp := snapPath + "/" + name
		include, descend := r.selected(sp, n.Type == fsmeta.TypeDir)
		if !include && !descend {
			continue
		}
		if n.Type == fsmeta.TypeDir {
			if err := ensureDir(path); err != nil {
				r.fail(path, err)
				continue
			}
			if err := r.walk(ctx, g, path, sp, *n.Subtree); err != nil {
				return err
			}
			if include {
				r.mu.Lock()
				r.dirs = append(r.dirs, dirMeta{path: path, node: n})
				r.mu.Unlock()
			}
			continue
		}
		if !include {
			continue
		}
		if n.Type == fsmeta.TypeFile && n.Links > 1 {
			key := [2]uint64{n.Device, n.Inode}
			r.mu.Lock()
			first, seen := r.hardlinks[key]
			if !seen {
				r.hardlinks[key] = path
			}
			r.mu.Unlock()
			if seen {
				// Link after the first copy is complete: queue behind it.
				g.Go(func() error {
					r.linkWhenReady(path, first)
					return nil
				})
				continue
			}
		}
		node := n
		if n.Type == fsmeta.TypeFile {
			r.pending(path)
			g.Go(func() error {
				defer r.done(path)
				if err := r.restoreFile(ctx, path, node); err != nil {
					if ctx.Err() != nil {
						return ctx.Err()
					}
					r.fail(path, err)
				}
				return nil
			})
			continue
		}
		if err := r.restoreSpecial(path, node); err != nil {
			r.fail(path, err)
		}
	}
	return nil
}

// ensureDir makes path a real directory, replacing whatever non-directory
// (a symlink planted to escape the target, say) is there.
func ensureDir(path string) error {
	fi, err := os.Lstat(path)
	if err == nil && fi.IsDir() {
		return nil
	}
	if err == nil {
		if err := os.Remove(path); err != nil {
			return err
		}
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

func (r *Restorer) restoreSpecial(path string, n *repository.Node) error {
	if err := removeExisting(path); err != nil {
		return err
	}
	if n.Type == fsmeta.TypeSocket {
		return nil // sockets belong to running programs; not recreated
	}
	if err := fsmeta.Create(path, &n.Meta); err != nil {
		return err
	}
	if err := fsmeta.Apply(path, &n.Meta, r.opts.Apply); err != nil {
		return err
	}
	r.opts.Progress.Files.Add(1)
	return nil
}

// pending and done track files being written, so that hardlinks to them
// wait for the first copy to be complete.
func (r *Restorer) pending(path string) {
	r.doneMu.Lock()
	r.inflight[path] = true
	r.doneMu.Unlock()
}

func (r *Restorer) done(path string) {
	r.doneMu.Lock()
	delete(r.inflight, path)
	r.doneMu.Unlock()
	r.doneCond.Broadcast()
}

func (r *Restorer) linkWhenReady(path, first string) {
	r.doneMu.Lock()
	for r.inflight[first] {
		r.doneCond.Wait()
	}
	r.doneMu.Unlock()
	if err := removeExisting(path); err != nil {
		r.fail(path, err)
		return
	}
	if err := os.Link(first, path); err != nil {
		r.fail(path, fmt.Errorf("hardlink to %s: %w", first, err))
		return
	}
	r.opts.Progress.Files.Add(1)
}

// fileIsCorrect reports whether path already holds exactly n's content.
func (r *Restorer) fileIsCorrect(path string, n *repository.Node) bool {
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_NOFOLLOW, 0) // #nosec G304 -- path is built by the restorer from validated tree names under the target
	if err != nil {
		return false
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() || fi.Size() != n.Size {
		return false
	}
	return r.compareContent(f, n) == nil
}

// compareContent reads f and checks it against the node's content list.
func (r *Restorer) compareContent(f *os.File, n *repository.Node) error {
	h := r.repo.Hasher()
	var off int64
	buf := make([]byte, 0, 1<<20)
	for _, c := range n.Content {
		if c.Hole > 0 {
			hole, err := holeLen(c)
			if err != nil {
				return err
			}
			if err := checkZero(f, off, hole); err != nil {
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

func checkZero(f *os.File, off, n int64) error {
	buf := make([]byte, min(n, 1<<20))
	for n > 0 {
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

// prefetchWindow is how many blobs of one file are loaded ahead of the
// writer, so a large file is decrypted and decompressed on several cores.
const prefetchWindow = 4

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
				data, err := r.repo.LoadBlob(ctx, repository.DataBlob, *c.ID)
				results[i] <- blobResult{data, err}
			}()
		}
	}()
	return results, func() { <-sem }
}

func (r *Restorer) restoreFile(ctx context.Context, path string, n *repository.Node) error {
	if r.fileIsCorrect(path, n) {
		r.opts.Progress.Skipped.Add(1)
		r.opts.Progress.Files.Add(1)
		r.opts.Progress.Bytes.Add(uint64(n.Size)) // #nosec G115 -- fileIsCorrect matched n.Size to the file's st_size, so it is not negative
		return fsmeta.Apply(path, &n.Meta, r.opts.Apply)
	}
	if err := removeExisting(path); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL|unix.O_NOFOLLOW, 0o600) // #nosec G304 -- path is built by the restorer from validated tree names under the target
	if err != nil {
		return err
	}
	sw := fsmeta.NewSparseWriter(f)
	pctx, cancel := context.WithCancel(ctx)
	defer cancel()
	blobs, release := r.prefetch(pctx, n.Content)
	for i, c := range n.Content {
		if err := ctx.Err(); err != nil {
			_ = f.Close()
			return err
		}
		if c.Hole > 0 {
			hole, err := holeLen(c)
			if err != nil {
				_ = f.Close()
				return err
			}
			if err := sw.WriteHole(hole); err != nil {
				_ = f.Close()
				return err
			}
			continue
		}
		res := <-blobs[i]
		release()
		data, err := res.data, res.err
		if err != nil {
			_ = f.Close()
			return err
		}
		if uint64(len(data)) != c.Size {
			_ = f.Close()
			return fmt.Errorf("blob %s has %d bytes, tree says %d", c.ID.Short(), len(data), c.Size)
		}
		if _, err := sw.Write(data); err != nil {
			_ = f.Close()
			return err
		}
		r.opts.Progress.Bytes.Add(uint64(len(data)))
	}
	if sw.Offset() != n.Size {
		_ = f.Close()
		return fmt.Errorf("content adds up to %d bytes, the snapshot says %d", sw.Offset(), n.Size)
	}
	if err := sw.Finish(); err != nil {
		_ = f.Close()
		return err
	}
	if r.opts.Verify {
		if err := r.compareContent(f, n); err != nil {
			_ = f.Close()
			return fmt.Errorf("verify: %w", err)
		}
	}
	if err := f.Close(); err != nil {
		return err
	}
	r.opts.Progress.Files.Add(1)
	return fsmeta.Apply(path, &n.Meta, r.opts.Apply)
}
