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
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coffer-backup/coffer/internal/atomicfile"
	"github.com/coffer-backup/coffer/internal/regfile"
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
//
// Every object path is resolved inside the repository directory through an
// os.Root, which never leaves it, and the directories of the layout (kind
// directories, data shards) must be real directories: one replaced by a
// symbolic link is refused with an error wrapping ErrSymlink, for reads
// and writes alike, rather than followed.
type Local struct {
	dir    string
	root   *os.Root
	packs  fileCache
	closed atomic.Bool
}

// ErrSymlink is wrapped by the error for a directory of the repository's
// layout that is a symbolic link: coffer does not follow it, since objects
// written through it would land outside the repository.
var ErrSymlink = errors.New("is a symbolic link; coffer does not follow links in a repository's layout")

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
	}
	root, err := os.OpenRoot(abs)
	if err != nil {
		return nil, fmt.Errorf("create repository: %w", err)
	}
	return layout(root, abs)
}

// CreateIn is Create for the directory rel inside parent (a storage
// server's object tree): rel's directories are made through parent and
// none of them may be a symbolic link.
func CreateIn(parent *os.Root, rel string) (*Local, error) {
	abs := filepath.Join(parent.Name(), rel)
	if err := realDirs(parent, parent.Name(), filepath.Dir(rel)); err != nil {
		return nil, fmt.Errorf("create repository: %w", err)
	}
	err := parent.Mkdir(rel, 0o700)
	switch {
	case err == nil:
		if err := syncIn(parent, filepath.Dir(rel)); err != nil {
			return nil, fmt.Errorf("create repository: %w", err)
		}
	case !errors.Is(err, fs.ErrExist):
		return nil, fmt.Errorf("create repository %s: %w", abs, err)
	}
	if err := realDirs(parent, parent.Name(), rel); err != nil {
		return nil, fmt.Errorf("create repository: %w", err)
	}
	root, err := parent.OpenRoot(rel)
	if err != nil {
		return nil, fmt.Errorf("create repository: %w", err)
	}
	return layout(root, abs)
}

// layout makes the kind directories in the empty directory root (taking
// root over: it is closed on failure) and returns the repository.
func layout(root *os.Root, abs string) (*Local, error) {
	fail := func(err error) (*Local, error) {
		_ = root.Close()
		return nil, err
	}
	empty, err := isEmptyDir(root)
	if err != nil {
		return fail(fmt.Errorf("create repository: %w", err))
	}
	if !empty {
		return fail(fmt.Errorf("create repository %s: %w", abs, ErrDirNotEmpty))
	}
	if err := root.Chmod(".", 0o700); err != nil { // #nosec G302 -- a directory: 0700 is owner-only
		return fail(fmt.Errorf("create repository: %w", err))
	}
	for _, k := range storage.Kinds {
		if k == storage.KindConfig {
			continue
		}
		if err := root.Mkdir(string(k), 0o700); err != nil {
			return fail(fmt.Errorf("create repository: %w", err))
		}
	}
	if err := syncIn(root, "."); err != nil {
		return fail(fmt.Errorf("create repository: %w", err))
	}
	return &Local{dir: abs, root: root, packs: newFileCache(openPacks)}, nil
}

func isEmptyDir(root *os.Root) (bool, error) {
	f, err := root.Open(".")
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
// dir itself may be reached through symbolic links; nothing below it is.
func Open(dir string) (*Local, error) {
	l, err := OpenDir(dir)
	if err != nil {
		return nil, err
	}
	if _, err := l.root.Lstat("config"); err != nil {
		_ = l.Close()
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("open repository %s: no config object: %w", l.dir, storage.ErrNoRepository)
		}
		return nil, fmt.Errorf("open repository: %w", err)
	}
	return l, nil
}

// syncIn fsyncs the directory rel of root.
func syncIn(root *os.Root, rel string) error {
	d, err := root.Open(rel)
	if err != nil {
		return fmt.Errorf("sync directory: %w", err)
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("sync directory %s: %w", d.Name(), err)
	}
	return nil
}

// realDirs checks that every directory on the path rel below root is a
// directory and not a symbolic link; base names root in errors. A missing
// one is an error matching fs.ErrNotExist.
func realDirs(root *os.Root, base, rel string) error {
	if rel == "." || rel == "" {
		return nil
	}
	cur := ""
	for _, part := range strings.Split(rel, string(filepath.Separator)) {
		cur = filepath.Join(cur, part)
		fi, err := root.Lstat(cur)
		if err != nil {
			return err
		}
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			target, _ := root.Readlink(cur)
			return fmt.Errorf("%s (to %q) %w", filepath.Join(base, cur), target, ErrSymlink)
		case !fi.IsDir():
			return fmt.Errorf("%s: is %s, not a directory", filepath.Join(base, cur), regfile.Describe(fi.Mode()))
		}
	}
	return nil
}

// Location returns the repository's absolute directory.
func (l *Local) Location() string { return l.dir }

// Close implements storage.Storage: it closes every pack file Load keeps
// open (one in use by a Load in progress when that Load ends) and the
// repository directory, and every call after it fails with
// storage.ErrClosed.
func (l *Local) Close() error {
	if l.closed.Swap(true) {
		return nil
	}
	l.packs.close()
	return l.root.Close()
}

// usable returns why a call cannot proceed: l is closed or ctx is done.
func (l *Local) usable(ctx context.Context) error {
	if l.closed.Load() {
		return storage.ErrClosed
	}
	return ctx.Err()
}

// dirOf returns the directory holding h and h's path, both relative to the
// repository directory. h must be valid.
func dirOf(h storage.Handle) (string, string) {
	switch h.Kind {
	case storage.KindConfig:
		return ".", "config"
	case storage.KindData:
		d := filepath.Join(string(h.Kind), shard(h.Name))
		return d, filepath.Join(d, h.Name)
	default:
		d := string(h.Kind)
		return d, filepath.Join(d, h.Name)
	}
}

// checkDir refuses a layout directory that is a symbolic link or no
// directory; a missing one matches fs.ErrNotExist.
func (l *Local) checkDir(rel string) error {
	return realDirs(l.root, l.dir, rel)
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
	dir, final := dirOf(h)
	err = l.checkDir(dir)
	if errors.Is(err, fs.ErrNotExist) && h.Kind != storage.KindConfig {
		err = l.mkdirs(dir)
	}
	if err != nil {
		return fmt.Errorf("save %s: %w", h, err)
	}
	// Cheap early refusal; the publish step is what guarantees no overwrite.
	if _, err := l.root.Lstat(final); err == nil {
		return fmt.Errorf("save %s: %w", h, storage.ErrExists)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("save %s: %w", h, err)
	}

	f, tmp, err := l.createTemp(dir)
	if err != nil {
		return fmt.Errorf("save %s: %w", h, err)
	}
	open := true
	defer func() {
		if err == nil {
			return
		}
		if open {
			_ = f.Close()
		}
		if rmErr := l.root.Remove(tmp); rmErr != nil && !errors.Is(rmErr, fs.ErrNotExist) {
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
	return l.publish(h, dir, tmp, final)
}

// createTemp creates a new temporary file, mode 0600, in the directory
// dir and returns it with its path relative to the repository.
func (l *Local) createTemp(dir string) (*os.File, string, error) {
	for range 10000 {
		name := filepath.Join(dir, tempPrefix+strconv.FormatUint(rand.Uint64(), 36)) // #nosec G404 -- a unique name, not a secret: O_EXCL settles collisions
		f, err := l.root.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		if err != nil {
			return nil, "", err
		}
		return f, name, nil
	}
	return nil, "", fmt.Errorf("create a temporary file in %s: too many collisions", filepath.Join(l.dir, dir))
}

// publish gives the synced temporary file tmp its final name unless an
// object has it, atomically, and syncs the directory dir holding both.
func (l *Local) publish(h storage.Handle, dir, tmp, final string) error {
	d, err := l.root.Open(dir)
	if err != nil {
		return fmt.Errorf("save %s: %w", h, err)
	}
	defer func() { _ = d.Close() }()
	err = publishFile(d, filepath.Base(tmp), filepath.Base(final))
	if errors.Is(err, fs.ErrExist) {
		err = storage.ErrExists
	}
	if err != nil {
		return fmt.Errorf("save %s: %w", h, err)
	}
	// From here on the object exists: a failing directory sync is reported
	// but the published file is not taken back.
	if err := d.Sync(); err != nil {
		return fmt.Errorf("save %s: object written but directory sync failed: %w", h, err)
	}
	return nil
}

// mkdirs creates the directory rel and any missing parents below the
// repository root, never the root itself, and syncs each new directory's
// parent. Directories that exist must not be symbolic links.
func (l *Local) mkdirs(rel string) error {
	if rel == "." || !filepath.IsLocal(rel) {
		return fmt.Errorf("directory %s outside repository", rel)
	}
	cur := "."
	for _, part := range strings.Split(rel, string(filepath.Separator)) {
		parent := cur
		cur = filepath.Join(cur, part)
		err := l.root.Mkdir(cur, 0o700)
		if errors.Is(err, fs.ErrExist) {
			if err := l.checkDir(cur); err != nil {
				return err
			}
			continue
		}
		if err != nil {
			return err
		}
		if err := syncIn(l.root, parent); err != nil {
			return err
		}
	}
	return nil
}

// publishFile is atomicfile.PublishAt; tests swap in
// atomicfile.PublishLinkAt to run on the path filesystems without
// RENAME_NOREPLACE take.
var publishFile = atomicfile.PublishAt

// readChunk bounds how much Load reads between two context checks.
const readChunk = 8 << 20

// Load implements storage.Storage. Pack files stay open between calls (at
// most openPacks of them, closed by Remove and Close): a restore reads
// thousands of blobs from each pack, and objects never change once written.
// Only regular files are opened, and never by a blocking open: a FIFO or
// device under an object's name is an error, not a hang.
func (l *Local) Load(ctx context.Context, h storage.Handle, offset, length int64) ([]byte, error) {
	if err := storage.ValidateHandle(h); err != nil {
		return nil, fmt.Errorf("load: %w", err)
	}
	if err := l.usable(ctx); err != nil {
		return nil, fmt.Errorf("load %s: %w", h, err)
	}
	_, p := dirOf(h)
	if h.Kind == storage.KindData && l.packs.files != nil {
		cf, err := l.packs.acquire(p, l.openObject)
		if err != nil {
			return nil, fmt.Errorf("load %s: %w", h, err)
		}
		defer l.packs.release(cf)
		return readRange(ctx, h, cf.f, cf.size, offset, length)
	}
	f, size, err := l.openObject(p)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", h, err)
	}
	defer func() { _ = f.Close() }()
	return readRange(ctx, h, f, size, offset, length)
}

// openObject opens the regular file at the object path p (relative to the
// repository) without blocking and returns it with its size.
func (l *Local) openObject(p string) (*os.File, int64, error) {
	if err := l.checkDir(filepath.Dir(p)); err != nil {
		return nil, 0, notFound(err)
	}
	f, fi, err := regfile.OpenIn(l.root, p)
	if err != nil {
		return nil, 0, notFound(err)
	}
	return f, fi.Size(), nil
}

// readRange reads length bytes at offset of an object of the given size;
// a negative length reads to the end. It reads at most readChunk bytes
// between two checks of ctx.
func readRange(ctx context.Context, h storage.Handle, f *os.File, size, offset, length int64) ([]byte, error) {
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
	for done := 0; done < len(buf); {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("load %s: %w", h, err)
		}
		want := min(len(buf)-done, readChunk)
		n, err := f.ReadAt(buf[done:done+want], offset+int64(done))
		done += n
		if n == want {
			continue
		}
		if err == nil || errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("load %s: read %d of %d bytes at %d: %w", h, done, length, offset, err)
	}
	return buf, nil
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

// acquire returns the open file at p, opened by open if it is not open
// yet; release it when done.
func (c *fileCache) acquire(p string, open func(string) (*os.File, int64, error)) (*cachedFile, error) {
	c.mu.Lock()
	if cf, ok := c.files[p]; ok {
		cf.refs++
		c.lru.MoveToFront(cf.elem)
		c.mu.Unlock()
		return cf, nil
	}
	c.mu.Unlock()
	f, size, err := open(p)
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
	fi, err := l.lstatObject(h)
	if err != nil {
		return storage.FileInfo{}, fmt.Errorf("stat %s: %w", h, err)
	}
	return storage.FileInfo{Name: h.Name, Size: fi.Size()}, nil
}

// lstatObject returns the file information of h's file, which must be a
// regular file in a real directory of the layout.
func (l *Local) lstatObject(h storage.Handle) (fs.FileInfo, error) {
	dir, p := dirOf(h)
	if err := l.checkDir(dir); err != nil {
		return nil, notFound(err)
	}
	fi, err := l.root.Lstat(p)
	if err != nil {
		return nil, notFound(err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is %s: %w", filepath.Join(l.dir, p), regfile.Describe(fi.Mode()), regfile.ErrNotRegular)
	}
	return fi, nil
}

// Remove implements storage.Storage.
func (l *Local) Remove(ctx context.Context, h storage.Handle) error {
	if err := storage.ValidateHandle(h); err != nil {
		return fmt.Errorf("remove: %w", err)
	}
	if err := l.usable(ctx); err != nil {
		return fmt.Errorf("remove %s: %w", h, err)
	}
	if _, err := l.lstatObject(h); err != nil {
		return fmt.Errorf("remove %s: %w", h, err)
	}
	dir, p := dirOf(h)
	l.packs.evict(p)
	if err := l.root.Remove(p); err != nil {
		return fmt.Errorf("remove %s: %w", h, notFound(err))
	}
	if err := syncIn(l.root, dir); err != nil {
		return fmt.Errorf("remove %s: %w", h, err)
	}
	return nil
}

// Forget closes the file of object h if Load keeps it open (once the
// Loads using it end): for a caller that moved h out of the repository
// by other means than Remove, so no Load still reads it.
func (l *Local) Forget(h storage.Handle) {
	_, p := dirOf(h)
	l.packs.evict(p)
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
		top := string(kind)
		return l.readDir(ctx, kind, top, func(e fs.DirEntry) error {
			if strings.HasPrefix(e.Name(), ".") {
				return nil
			}
			sub := e.Name()
			if !e.IsDir() {
				if e.Type()&fs.ModeSymlink != 0 && len(sub) <= 2 {
					return l.checkDir(filepath.Join(top, sub)) // a shard replaced by a link
				}
				return nil
			}
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
		return l.readDir(ctx, kind, string(kind), func(e fs.DirEntry) error {
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

// readDir calls each for every entry of the directory rel, reading it in
// batches and checking ctx between entries. A missing kind directory is an
// empty listing only while the repository's config still exists.
func (l *Local) readDir(ctx context.Context, kind storage.Kind, rel string, each func(fs.DirEntry) error) error {
	err := l.checkDir(rel)
	var d *os.File
	if err == nil {
		d, err = l.root.Open(rel)
	}
	if errors.Is(err, fs.ErrNotExist) {
		if _, cerr := l.root.Lstat("config"); cerr != nil {
			return fmt.Errorf("list %s: repository %s: %w (%w)", kind, l.dir, storage.ErrNoRepository, cerr)
		}
		if filepath.Dir(rel) != "." {
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
	err := l.eachTemp(olderThan, func(rel string, _ fs.FileInfo) error {
		if err := l.root.Remove(rel); err != nil && !errors.Is(err, fs.ErrNotExist) {
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

// tempDirs returns the directories where Save makes temporary files,
// relative to the repository: the root, the kind directories and the data
// shards that are real directories.
func (l *Local) tempDirs() ([]string, error) {
	dirs := []string{"."}
	for _, k := range storage.Kinds {
		if k == storage.KindConfig {
			continue
		}
		d := string(k)
		if err := l.checkDir(d); errors.Is(err, fs.ErrNotExist) {
			continue
		} else if err != nil {
			return nil, err
		}
		dirs = append(dirs, d)
		if k != storage.KindData {
			continue
		}
		entries, err := fs.ReadDir(l.root.FS(), d)
		if err != nil {
			return nil, err
		}
		for _, e := range entries {
			if e.IsDir() { // a link to a directory is no shard of ours
				dirs = append(dirs, filepath.Join(d, e.Name()))
			}
		}
	}
	return dirs, nil
}

// eachTemp calls fn for every temporary file older than olderThan, with
// its path relative to the repository.
func (l *Local) eachTemp(olderThan time.Duration, fn func(rel string, info fs.FileInfo) error) error {
	if l.closed.Load() {
		return fmt.Errorf("clean temporary files: %w", storage.ErrClosed)
	}
	cutoff := time.Now().Add(-olderThan)
	dirs, err := l.tempDirs()
	if err != nil {
		return fmt.Errorf("clean temporary files: %w", err)
	}
	for _, d := range dirs {
		entries, err := fs.ReadDir(l.root.FS(), filepath.ToSlash(d))
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
