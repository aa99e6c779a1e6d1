// Package local is the storage backend for a repository in a directory on
// local disk: atomic, durable, no-overwrite writes of one file per object.
package local

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coffer-backup/coffer/internal/atomicfile"
	"github.com/coffer-backup/coffer/internal/storage"
)

// ErrDirNotEmpty is returned by Create when the target directory already
// holds something: coffer never creates a repository over existing files.
var ErrDirNotEmpty = errors.New("directory exists and is not empty")

// tempPrefix starts the name of every file Save has not yet published.
const tempPrefix = ".tmp-"

// writeChunk bounds how much Save writes between two context checks. The
// kill test lowers it so a writer is often killed between two writes.
var writeChunk = 8 << 20

// listBatch is how many directory entries List reads at a time.
const listBatch = 1024

// Local is a repository in a local directory. It is safe for concurrent use,
// also by several processes sharing the directory.
//
// Layout: <dir>/config, <dir>/<kind>/<name>, and packs sharded by the first
// two characters of their name: <dir>/data/<name[:2]>/<name> (a one-character
// name is its own shard). Directories are 0700, files 0600. Files being
// written are named ".tmp-*" in their target directory and never listed.
type Local struct {
	dir    string
	packs  fileCache
	closed atomic.Bool
}

// openPacks bounds how many pack files Load keeps open.
const openPacks = 64

var (
	_ storage.Storage     = (*Local)(nil)
	_ storage.StreamSaver = (*Local)(nil)
)

// Create makes a new, empty repository layout in dir with mode 0700. dir
// may be missing (it and its parents are created) or an empty directory;
// anything else fails with ErrDirNotEmpty or a path error. The caller then
// saves the config object; until then Open reports no repository.
func Create(dir string) (*Local, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("create repository %s: %w", dir, err)
	}
	fi, err := os.Stat(abs)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := os.MkdirAll(abs, 0o700); err != nil {
			return nil, fmt.Errorf("create repository: %w", err)
		}
		if err := atomicfile.SyncDir(filepath.Dir(abs)); err != nil {
			return nil, fmt.Errorf("create repository: %w", err)
		}
	case err != nil:
		return nil, fmt.Errorf("create repository: %w", err)
	case !fi.IsDir():
		return nil, fmt.Errorf("create repository %s: not a directory", abs)
	default:
		empty, err := isEmptyDir(abs)
		if err != nil {
			return nil, fmt.Errorf("create repository: %w", err)
		}
		if !empty {
			return nil, fmt.Errorf("create repository %s: %w", abs, ErrDirNotEmpty)
		}
		if err := os.Chmod(abs, 0o700); err != nil { // #nosec G302 -- a directory: 0700 is owner-only
			return nil, fmt.Errorf("create repository: %w", err)
		}
	}
	for _, k := range storage.Kinds {
		if k == storage.KindConfig {
			continue
		}
		if err := os.Mkdir(filepath.Join(abs, string(k)), 0o700); err != nil {
			return nil, fmt.Errorf("create repository: %w", err)
		}
	}
	if err := atomicfile.SyncDir(abs); err != nil {
		return nil, fmt.Errorf("create repository: %w", err)
	}
	return &Local{dir: abs, packs: newFileCache(openPacks)}, nil
}

func isEmptyDir(dir string) (bool, error) {
	f, err := os.Open(dir) // #nosec G304 -- the repository directory the user named
	if err != nil {
		return false, err
	}
	defer func() { _ = f.Close() }()
	names, err := f.Readdirnames(1)
	if errors.Is(err, io.EOF) {
		return true, nil
	}
	if err != nil {
		return false, err
	}
	return len(names) == 0, nil
}

// Open opens the repository in dir. It fails with an error wrapping
// storage.ErrNoRepository when dir or its config object does not exist.
func Open(dir string) (*Local, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("open repository %s: %w", dir, err)
	}
	fi, err := os.Stat(abs) // #nosec G703 -- the repository directory the user named
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("open repository %s: %w", abs, storage.ErrNoRepository)
	}
	if err != nil {
		return nil, fmt.Errorf("open repository: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("open repository %s: not a directory: %w", abs, storage.ErrNoRepository)
	}
	l := &Local{dir: abs, packs: newFileCache(openPacks)}
	if _, err := os.Stat(filepath.Join(abs, "config")); err != nil { // #nosec G703 -- the repository directory the user named
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("open repository %s: no config object: %w", abs, storage.ErrNoRepository)
		}
		return nil, fmt.Errorf("open repository: %w", err)
	}
	return l, nil
}

// Location returns the repository's absolute directory.
func (l *Local) Location() string { return l.dir }

// Close implements storage.Storage: it closes every pack file Load keeps
// open (one in use by a Load in progress when that Load ends), and every
// call after it fails with storage.ErrClosed.
func (l *Local) Close() error {
	l.closed.Store(true)
	l.packs.close()
	return nil
}

// usable returns why a call cannot proceed: l is closed or ctx is done.
func (l *Local) usable(ctx context.Context) error {
	if l.closed.Load() {
		return storage.ErrClosed
	}
	return ctx.Err()
}

// dirOf returns the directory holding h and h's path. h must be valid.
func (l *Local) dirOf(h storage.Handle) (string, string) {
	switch h.Kind {
	case storage.KindConfig:
		return l.dir, filepath.Join(l.dir, "config")
	case storage.KindData:
		d := filepath.Join(l.dir, string(h.Kind), shard(h.Name))
		return d, filepath.Join(d, h.Name)
	default:
		d := filepath.Join(l.dir, string(h.Kind))
		return d, filepath.Join(d, h.Name)
	}
}

// shard is the name of the data subdirectory holding a pack.
func shard(name string) string {
	if len(name) < 2 {
		return name
	}
	return name[:2]
}

// Save implements storage.Storage: the object is written to a temporary
// file beside its final name, synced, published with a no-replace rename
// (or hard link) and its directory synced. On any error the temporary file
// is removed and nothing is visible under h.
func (l *Local) Save(ctx context.Context, h storage.Handle, data []byte) error {
	return l.save(ctx, h, func(f *os.File) error {
		for rest := data; len(rest) > 0; {
			if err := ctx.Err(); err != nil {
				return err
			}
			n := min(len(rest), writeChunk)
			if _, err := f.Write(rest[:n]); err != nil {
				return err
			}
			rest = rest[n:]
		}
		return nil
	})
}

// SaveStream implements storage.StreamSaver with Save's guarantees. src
// writes straight into the temporary file, so a source backed by a file can
// be copied in the kernel (copy_file_range).
func (l *Local) SaveStream(ctx context.Context, h storage.Handle, src io.WriterTo, size int64) error {
	return l.save(ctx, h, func(f *os.File) error {
		n, err := src.WriteTo(f)
		if err != nil {
			return err
		}
		if n != size {
			return fmt.Errorf("source wrote %d bytes, want %d: %w", n, size, io.ErrUnexpectedEOF)
		}
		return nil
	})
}

// save writes an object through fill into a temporary file beside its
// final name, syncs it, publishes it without replacing and syncs its
// directory. On any error the temporary file is removed.
func (l *Local) save(ctx context.Context, h storage.Handle, fill func(*os.File) error) (err error) {
	if err := storage.ValidateHandle(h); err != nil {
		return fmt.Errorf("save: %w", err)
	}
	if err := l.usable(ctx); err != nil {
		return fmt.Errorf("save %s: %w", h, err)
	}
	dir, final := l.dirOf(h)
	// Cheap early refusal; the publish step is what guarantees no overwrite.
	if _, err := os.Lstat(final); err == nil { // #nosec G703 -- path built from a validated handle
		return fmt.Errorf("save %s: %w", h, storage.ErrExists)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("save %s: %w", h, err)
	}

	f, err := os.CreateTemp(dir, tempPrefix+"*")
	if errors.Is(err, fs.ErrNotExist) && h.Kind != storage.KindConfig {
		if err := l.mkdirs(dir); err != nil {
			return fmt.Errorf("save %s: %w", h, err)
		}
		f, err = os.CreateTemp(dir, tempPrefix+"*")
	}
	if err != nil {
		return fmt.Errorf("save %s: %w", h, err)
	}
	tmp := f.Name()
	open := true
	defer func() {
		if err == nil {
			return
		}
		if open {
			_ = f.Close()
		}
		if rmErr := os.Remove(tmp); rmErr != nil && !errors.Is(rmErr, fs.ErrNotExist) { // #nosec G703 -- our own temporary file
			err = fmt.Errorf("%w (removing temporary file also failed: %v)", err, rmErr)
		}
	}()

	if err := fill(f); err != nil {
		return fmt.Errorf("save %s: %w", h, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("save %s: sync: %w", h, err)
	}
	open = false
	if err := f.Close(); err != nil {
		return fmt.Errorf("save %s: %w", h, err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("save %s: %w", h, err)
	}
	if err := publish(tmp, final); err != nil {
		return fmt.Errorf("save %s: %w", h, err)
	}
	// From here on the object exists: a failing directory sync is reported
	// but the published file is not taken back.
	if err := atomicfile.SyncDir(dir); err != nil {
		return fmt.Errorf("save %s: object written but directory sync failed: %w", h, err)
	}
	return nil
}

// mkdirs creates dir and any missing parents below the repository root,
// never the root itself, and syncs each new directory's parent.
func (l *Local) mkdirs(dir string) error {
	rel, err := filepath.Rel(l.dir, dir)
	if err != nil || rel == "." || strings.HasPrefix(rel, "..") {
		return fmt.Errorf("directory %s outside repository", dir)
	}
	cur := l.dir
	for _, part := range strings.Split(rel, string(filepath.Separator)) {
		parent := cur
		cur = filepath.Join(cur, part)
		err := os.Mkdir(cur, 0o700) // #nosec G703 -- a directory below the repository root
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		if err != nil {
			return err
		}
		if err := atomicfile.SyncDir(parent); err != nil {
			return err
		}
	}
	return nil
}

// publishFile is atomicfile.Publish; tests swap in atomicfile.PublishLink
// to run on the path filesystems without RENAME_NOREPLACE take.
var publishFile = atomicfile.Publish

// publish gives tmp the name final unless final exists, atomically.
func publish(tmp, final string) error {
	err := publishFile(tmp, final)
	if errors.Is(err, fs.ErrExist) {
		return storage.ErrExists
	}
	return err
}

// Load implements storage.Storage. Pack files stay open between calls (at
// most openPacks of them, closed by Remove and Close): a restore reads
// thousands of blobs from each pack, and objects never change once written.
func (l *Local) Load(ctx context.Context, h storage.Handle, offset, length int64) ([]byte, error) {
	if err := storage.ValidateHandle(h); err != nil {
		return nil, fmt.Errorf("load: %w", err)
	}
	if err := l.usable(ctx); err != nil {
		return nil, fmt.Errorf("load %s: %w", h, err)
	}
	_, p := l.dirOf(h)
	if h.Kind == storage.KindData && l.packs.files != nil {
		cf, err := l.packs.acquire(p)
		if err != nil {
			return nil, fmt.Errorf("load %s: %w", h, err)
		}
		defer l.packs.release(cf)
		return readRange(h, cf.f, cf.size, offset, length)
	}
	f, size, err := openObject(p)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", h, err)
	}
	defer func() { _ = f.Close() }()
	return readRange(h, f, size, offset, length)
}

// openObject opens the regular file p and returns its size.
func openObject(p string) (*os.File, int64, error) {
	f, err := os.Open(p) // #nosec G304 -- path built from a validated handle
	if err != nil {
		return nil, 0, notFound(err)
	}
	fi, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return nil, 0, err
	}
	if !fi.Mode().IsRegular() {
		_ = f.Close()
		return nil, 0, errors.New("not a regular file")
	}
	return f, fi.Size(), nil
}

// readRange reads length bytes at offset of an object of the given size;
// a negative length reads to the end.
func readRange(h storage.Handle, f *os.File, size, offset, length int64) ([]byte, error) {
	if offset < 0 || offset > size {
		return nil, fmt.Errorf("load %s: offset %d of %d bytes: %w", h, offset, size, storage.ErrRange)
	}
	if length < 0 {
		length = size - offset
	}
	if length > size-offset {
		return nil, fmt.Errorf("load %s: %d bytes at %d of %d: %w", h, length, offset, size, storage.ErrRange)
	}
	buf := make([]byte, length)
	n, err := f.ReadAt(buf, offset)
	if n == len(buf) {
		return buf, nil
	}
	if err == nil || errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	return nil, fmt.Errorf("load %s: read %d of %d bytes at %d: %w", h, n, length, offset, err)
}

// fileCache keeps up to max files open, least recently used evicted first.
// A file in use is closed only when its last user releases it.
type fileCache struct {
	mu     sync.Mutex
	max    int
	files  map[string]*cachedFile
	lru    *list.List // of *cachedFile, most recently used first
	closed bool       // set by close: nothing is cached any more
}

type cachedFile struct {
	f       *os.File
	size    int64
	path    string
	refs    int
	evicted bool
	elem    *list.Element
}

func newFileCache(n int) fileCache {
	return fileCache{max: n, files: map[string]*cachedFile{}, lru: list.New()}
}

// acquire returns the open file at p; release it when done.
func (c *fileCache) acquire(p string) (*cachedFile, error) {
	c.mu.Lock()
	if cf, ok := c.files[p]; ok {
		cf.refs++
		c.lru.MoveToFront(cf.elem)
		c.mu.Unlock()
		return cf, nil
	}
	c.mu.Unlock()
	f, size, err := openObject(p)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed { // closed while the file was being opened
		_ = f.Close()
		return nil, storage.ErrClosed
	}
	if cf, ok := c.files[p]; ok { // opened meanwhile by another caller
		_ = f.Close()
		cf.refs++
		c.lru.MoveToFront(cf.elem)
		return cf, nil
	}
	cf := &cachedFile{f: f, size: size, path: p, refs: 1}
	cf.elem = c.lru.PushFront(cf)
	c.files[p] = cf
	for c.lru.Len() > c.max {
		c.evictLocked(c.lru.Back().Value.(*cachedFile))
	}
	return cf, nil
}

func (c *fileCache) release(cf *cachedFile) {
	c.mu.Lock()
	defer c.mu.Unlock()
	cf.refs--
	if cf.evicted && cf.refs == 0 {
		_ = cf.f.Close()
	}
}

func (c *fileCache) evictLocked(cf *cachedFile) {
	c.lru.Remove(cf.elem)
	delete(c.files, cf.path)
	cf.evicted = true
	if cf.refs == 0 {
		_ = cf.f.Close()
	}
}

// evict closes p's file if it is open (when not in use, else after).
func (c *fileCache) evict(p string) {
	if c.files == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if cf, ok := c.files[p]; ok {
		c.evictLocked(cf)
	}
}

// close evicts every file and makes later acquires fail with
// storage.ErrClosed.
func (c *fileCache) close() {
	if c.files == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	for c.lru.Len() > 0 {
		c.evictLocked(c.lru.Back().Value.(*cachedFile))
	}
}

func notFound(err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%w: %w", storage.ErrNotFound, err)
	}
	return err
}

// Stat implements storage.Storage.
func (l *Local) Stat(ctx context.Context, h storage.Handle) (storage.FileInfo, error) {
	if err := storage.ValidateHandle(h); err != nil {
		return storage.FileInfo{}, fmt.Errorf("stat: %w", err)
	}
	if err := l.usable(ctx); err != nil {
		return storage.FileInfo{}, fmt.Errorf("stat %s: %w", h, err)
	}
	_, p := l.dirOf(h)
	fi, err := os.Lstat(p)
	if err != nil {
		return storage.FileInfo{}, fmt.Errorf("stat %s: %w", h, notFound(err))
	}
	if !fi.Mode().IsRegular() {
		return storage.FileInfo{}, fmt.Errorf("stat %s: not a regular file", h)
	}
	return storage.FileInfo{Name: h.Name, Size: fi.Size()}, nil
}

// Remove implements storage.Storage.
func (l *Local) Remove(ctx context.Context, h storage.Handle) error {
	if err := storage.ValidateHandle(h); err != nil {
		return fmt.Errorf("remove: %w", err)
	}
	if err := l.usable(ctx); err != nil {
		return fmt.Errorf("remove %s: %w", h, err)
	}
	dir, p := l.dirOf(h)
	fi, err := os.Lstat(p)
	if err != nil {
		return fmt.Errorf("remove %s: %w", h, notFound(err))
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("remove %s: not a regular file", h)
	}
	l.packs.evict(p)
	if err := os.Remove(p); err != nil {
		return fmt.Errorf("remove %s: %w", h, notFound(err))
	}
	if err := atomicfile.SyncDir(dir); err != nil {
		return fmt.Errorf("remove %s: %w", h, err)
	}
	return nil
}

// List implements storage.Storage. Temporary files, entries whose names are
// not valid object names and packs in the wrong shard are not reported:
// none of them can be loaded by name.
func (l *Local) List(ctx context.Context, kind storage.Kind, fn func(storage.FileInfo) error) error {
	if !storage.ValidKind(kind) {
		return fmt.Errorf("list: %w: unknown kind %q", storage.ErrInvalidName, kind)
	}
	if err := l.usable(ctx); err != nil {
		return fmt.Errorf("list %s: %w", kind, err)
	}
	switch kind {
	case storage.KindConfig:
		fi, err := l.Stat(ctx, storage.Handle{Kind: kind, Name: "config"})
		if errors.Is(err, storage.ErrNotFound) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("list config: %w", err)
		}
		return fn(fi)
	case storage.KindData:
		top := filepath.Join(l.dir, string(kind))
		return l.readDir(ctx, kind, top, func(e fs.DirEntry) error {
			if !e.IsDir() || strings.HasPrefix(e.Name(), ".") {
				return nil
			}
			sub := e.Name()
			err := l.readDir(ctx, kind, filepath.Join(top, sub), func(e fs.DirEntry) error {
				if shard(e.Name()) != sub {
					return nil
				}
				return report(kind, e, fn)
			})
			if errors.Is(err, errDirGone) {
				return nil // the shard vanished while listing: nothing in it.
			}
			return err
		})
	default:
		return l.readDir(ctx, kind, filepath.Join(l.dir, string(kind)), func(e fs.DirEntry) error {
			return report(kind, e, fn)
		})
	}
}

// errDirGone reports a missing data shard, which is an empty one.
var errDirGone = errors.New("directory does not exist")

// report passes a directory entry to fn if it is a complete object.
func report(kind storage.Kind, e fs.DirEntry, fn func(storage.FileInfo) error) error {
	name := e.Name()
	if strings.HasPrefix(name, tempPrefix) || !e.Type().IsRegular() {
		return nil
	}
	if storage.ValidateHandle(storage.Handle{Kind: kind, Name: name}) != nil {
		return nil
	}
	info, err := e.Info()
	if errors.Is(err, fs.ErrNotExist) {
		return nil // removed since the directory was read
	}
	if err != nil {
		return fmt.Errorf("list %s: %w", kind, err)
	}
	return fn(storage.FileInfo{Name: name, Size: info.Size()})
}

// readDir calls each for every entry of dir, reading it in batches and
// checking ctx between entries. A missing kind directory is an empty listing
// only while the repository's config still exists.
func (l *Local) readDir(ctx context.Context, kind storage.Kind, dir string, each func(fs.DirEntry) error) error {
	d, err := os.Open(dir) // #nosec G304 -- a directory of the repository
	if errors.Is(err, fs.ErrNotExist) {
		if _, cerr := os.Stat(filepath.Join(l.dir, "config")); cerr != nil {
			return fmt.Errorf("list %s: repository %s: %w (%w)", kind, l.dir, storage.ErrNoRepository, cerr)
		}
		if filepath.Dir(dir) != l.dir {
			return errDirGone
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("list %s: %w", kind, err)
	}
	defer func() { _ = d.Close() }()
	for {
		entries, err := d.ReadDir(listBatch)
		for _, e := range entries {
			if cerr := ctx.Err(); cerr != nil {
				return fmt.Errorf("list %s: %w", kind, cerr)
			}
			if err := each(e); err != nil {
				return err
			}
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("list %s: %w", kind, err)
		}
	}
}

// CleanTemp removes temporary files older than olderThan that a killed
// process left behind, and returns how many it removed. Run it only with a
// margin far longer than any Save can take: a younger file may be a write
// in progress.
func (l *Local) CleanTemp(olderThan time.Duration) (int, error) {
	removed := 0
	err := l.eachTemp(olderThan, func(path string, _ fs.FileInfo) error {
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		removed++
		return nil
	})
	return removed, err
}

// TempFiles counts the temporary files older than olderThan and their
// bytes, as CleanTemp would remove them.
func (l *Local) TempFiles(olderThan time.Duration) (int, int64, error) {
	n, size := 0, int64(0)
	err := l.eachTemp(olderThan, func(_ string, info fs.FileInfo) error {
		n++
		size += info.Size()
		return nil
	})
	return n, size, err
}

// eachTemp calls fn for every temporary file older than olderThan.
func (l *Local) eachTemp(olderThan time.Duration, fn func(path string, info fs.FileInfo) error) error {
	if l.closed.Load() {
		return fmt.Errorf("clean temporary files: %w", storage.ErrClosed)
	}
	cutoff := time.Now().Add(-olderThan)
	dirs := []string{l.dir}
	for _, k := range storage.Kinds {
		if k == storage.KindConfig {
			continue
		}
		d := filepath.Join(l.dir, string(k))
		dirs = append(dirs, d)
		if k == storage.KindData {
			entries, err := os.ReadDir(d)
			if err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("clean temporary files: %w", err)
			}
			for _, e := range entries {
				if e.IsDir() {
					dirs = append(dirs, filepath.Join(d, e.Name()))
				}
			}
		}
	}
	for _, d := range dirs {
		entries, err := os.ReadDir(d)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("clean temporary files: %w", err)
		}
		for _, e := range entries {
			if !strings.HasPrefix(e.Name(), tempPrefix) || !e.Type().IsRegular() {
				continue
			}
			info, err := e.Info()
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			if err != nil {
				return fmt.Errorf("clean temporary files: %w", err)
			}
			if !info.ModTime().Before(cutoff) {
				continue
			}
			if err := fn(filepath.Join(d, e.Name()), info); err != nil {
				return fmt.Errorf("clean temporary files: %w", err)
			}
		}
	}
	return nil
}
