package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/coffer-backup/coffer/internal/storage"
	"github.com/coffer-backup/coffer/internal/wire"
)

// Layout of the state directory (see InitDir).
const (
	KeyFile    = "at-rest.key" // the at-rest key: 32 random bytes, mode 0600
	ObjectsDir = "objects"     // objects/<client>/<repo>/<kind>/<name>
	TempDir    = "tmp"         // uploads in progress; emptied at start
	LockFile   = "server.lock" // held by the running server
)

// store keeps the objects of all clients under one directory, encrypted
// with the at-rest key. Every method validates the names it joins into a
// path, whatever its caller checked before.
type store struct {
	root string // <dir>/objects
	tmp  string // <dir>/tmp
	key  *[atRestKeyLen]byte
}

func validID(id objectID) error {
	if err := wire.ValidateClientName(id.Client); err != nil {
		return err
	}
	if err := wire.ValidateRepo(id.Repo); err != nil {
		return err
	}
	return storage.ValidateHandle(storage.Handle{Kind: storage.Kind(id.Kind), Name: id.Name})
}

func (s *store) repoDir(client, repo string) (string, error) {
	if err := wire.ValidateClientName(client); err != nil {
		return "", err
	}
	if err := wire.ValidateRepo(repo); err != nil {
		return "", err
	}
	return filepath.Join(s.root, client, repo), nil
}

// objectPath returns the directory and file of an object; packs are sharded by
// the first two characters of their name, as the local backend does.
func (s *store) objectPath(id objectID) (dir, file string, err error) {
	if err := validID(id); err != nil {
		return "", "", err
	}
	dir = filepath.Join(s.root, id.Client, id.Repo, id.Kind)
	if id.Kind == string(storage.KindData) {
		dir = filepath.Join(dir, shard(id.Name))
	}
	return dir, filepath.Join(dir, id.Name), nil
}

func shard(name string) string {
	if len(name) < 2 {
		return name
	}
	return name[:2]
}

// repoExists returns nil, storage.ErrNoRepository or an I/O error.
func (s *store) repoExists(client, repo string) error {
	dir, err := s.repoDir(client, repo)
	if err != nil {
		return err
	}
	fi, err := os.Stat(dir)
	if errors.Is(err, fs.ErrNotExist) || err == nil && !fi.IsDir() {
		return fmt.Errorf("repository %s: %w", repo, storage.ErrNoRepository)
	}
	return err
}

// createRepo makes the namespace of a new repository; ErrExists if it is there.
func (s *store) createRepo(client, repo string) error {
	dir, err := s.repoDir(client, repo)
	if err != nil {
		return err
	}
	clientDir := filepath.Dir(dir)
	if err := os.Mkdir(clientDir, 0o700); err == nil {
		if err := syncDir(s.root); err != nil {
			return err
		}
	} else if !errors.Is(err, fs.ErrExist) {
		return err
	}
	if err := os.Mkdir(dir, 0o700); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("repository %s: %w", repo, storage.ErrExists)
		}
		return err
	}
	for _, k := range storage.Kinds {
		if err := os.Mkdir(filepath.Join(dir, string(k)), 0o700); err != nil {
			return err
		}
	}
	if err := syncDir(dir); err != nil {
		return err
	}
	return syncDir(clientDir)
}

// save stores size bytes read from r as id: sealed into a temporary file,
// synced, published without replacing, and its directory synced. Nothing
// is visible under id unless save returns nil.
func (s *store) save(ctx context.Context, id objectID, size int64, r io.Reader, wantHash []byte, received time.Time) (err error) {
	dir, final, err := s.objectPath(id)
	if err != nil {
		return err
	}
	if err := s.repoExists(id.Client, id.Repo); err != nil {
		return err
	}
	if _, err := os.Lstat(final); err == nil {
		return fmt.Errorf("%s: %w", id.Name, storage.ErrExists)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	f, err := os.CreateTemp(s.tmp, "up-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer func() {
		if f != nil {
			_ = f.Close()
		}
		if err != nil {
			_ = os.Remove(tmp)
		}
	}()
	if _, err := sealObject(f, s.key, id, size, r, wantHash, received); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync upload: %w", err)
	}
	err = f.Close()
	f = nil
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := s.mkdirs(dir); err != nil {
		return err
	}
	if err := publish(tmp, final); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("%s: %w", id.Name, storage.ErrExists)
		}
		return err
	}
	// The object is published; a failing directory sync is reported, and the
	// object is not taken back (the client may retry and find it exists).
	return syncDir(dir)
}

// mkdirs creates a kind directory or a shard directory and its kind
// directory, below an existing repository directory, syncing each parent.
func (s *store) mkdirs(dir string) error {
	if _, err := os.Stat(dir); err == nil {
		return nil
	}
	parent := filepath.Dir(dir)
	if _, err := os.Stat(parent); errors.Is(err, fs.ErrNotExist) {
		if err := os.Mkdir(parent, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
			return err
		}
		if err := syncDir(filepath.Dir(parent)); err != nil {
			return err
		}
	}
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	return syncDir(parent)
}

// open returns a verified-header reader of id, or storage.ErrNotFound (or
// storage.ErrNoRepository when the repository itself is missing).
func (s *store) open(id objectID) (*objectReader, error) {
	_, file, err := s.objectPath(id)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(file) // #nosec G304 -- every component is validated by objectPath
	if errors.Is(err, fs.ErrNotExist) {
		if rerr := s.repoExists(id.Client, id.Repo); rerr != nil {
			return nil, rerr
		}
		return nil, fmt.Errorf("%s: %w", id.Name, storage.ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	o, err := openObject(f, s.key, id)
	if err != nil {
		_ = f.Close()
		return nil, err
	}
	return o, nil
}

// Close closes the file and returns the reader's buffer to the pool.
func (o *objectReader) Close() error {
	putBuf(o.sealed)
	o.sealed = nil
	return o.f.Close()
}

// remove deletes id and returns its content size.
func (s *store) remove(id objectID) error {
	dir, file, err := s.objectPath(id)
	if err != nil {
		return err
	}
	if err := os.Remove(file); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			if rerr := s.repoExists(id.Client, id.Repo); rerr != nil {
				return rerr
			}
			return fmt.Errorf("%s: %w", id.Name, storage.ErrNotFound)
		}
		return err
	}
	return syncDir(dir)
}

// entry is one listed object.
type entry struct {
	name string
	size int64
	file string
}

// list calls fn for every object of kind in a repository. Files whose size
// no object can have are skipped (Scrub reports them); names that are not
// valid object names (nothing coffer writes) are ignored.
func (s *store) list(ctx context.Context, client, repo string, kind storage.Kind, fn func(entry) error) error {
	if !storage.ValidKind(kind) {
		return fmt.Errorf("%w: unknown kind %q", storage.ErrInvalidName, kind)
	}
	if err := s.repoExists(client, repo); err != nil {
		return err
	}
	dir := filepath.Join(s.root, client, repo, string(kind))
	if kind != storage.KindData {
		return listDir(ctx, dir, kind, "", fn)
	}
	return readDir(ctx, dir, func(e fs.DirEntry) error {
		if !e.IsDir() {
			return nil
		}
		return listDir(ctx, filepath.Join(dir, e.Name()), kind, e.Name(), fn)
	})
}

func listDir(ctx context.Context, dir string, kind storage.Kind, shardName string, fn func(entry) error) error {
	return readDir(ctx, dir, func(e fs.DirEntry) error {
		name := e.Name()
		if !e.Type().IsRegular() || storage.ValidateHandle(storage.Handle{Kind: kind, Name: name}) != nil {
			return nil
		}
		if shardName != "" && shard(name) != shardName {
			return nil
		}
		fi, err := e.Info()
		if errors.Is(err, fs.ErrNotExist) {
			return nil // removed meanwhile
		}
		if err != nil {
			return err
		}
		size, ok := contentSize(fi.Size())
		if !ok {
			return nil
		}
		return fn(entry{name: name, size: size, file: filepath.Join(dir, name)})
	})
}

// readDir calls each for the entries of dir in batches, checking ctx. A
// missing directory has no entries.
func readDir(ctx context.Context, dir string, each func(fs.DirEntry) error) error {
	d, err := os.Open(dir) // #nosec G304 -- built from validated components
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer func() { _ = d.Close() }()
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		batch, err := d.ReadDir(1024)
		for _, e := range batch {
			if err := ctx.Err(); err != nil {
				return err
			}
			if err := each(e); err != nil {
				return err
			}
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// usage sums the content sizes of every object of a client.
func (s *store) usage(ctx context.Context, client string) (int64, error) {
	if err := wire.ValidateClientName(client); err != nil {
		return 0, err
	}
	var total int64
	err := filepath.WalkDir(filepath.Join(s.root, client), func(path string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if d.Type().IsRegular() {
			fi, err := d.Info()
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			if err != nil {
				return err
			}
			if size, ok := contentSize(fi.Size()); ok {
				total += size
			}
		}
		return nil
	})
	return total, err
}

// cleanTemp removes every leftover upload: a server killed mid-upload
// leaves its temporary file here and never a partial object.
func (s *store) cleanTemp() (int, error) {
	entries, err := os.ReadDir(s.tmp)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(s.tmp, e.Name())); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// parseObjectPath turns a path below root back into an object ID, or
// reports that it is not one.
func (s *store) parseObjectPath(path string) (objectID, bool) {
	rel, err := filepath.Rel(s.root, path)
	if err != nil {
		return objectID{}, false
	}
	parts := strings.Split(filepath.ToSlash(rel), "/")
	var id objectID
	switch {
	case len(parts) == 4 && parts[2] != string(storage.KindData):
		id = objectID{parts[0], parts[1], parts[2], parts[3]}
	case len(parts) == 5 && parts[2] == string(storage.KindData) && shard(parts[4]) == parts[3]:
		id = objectID{parts[0], parts[1], parts[2], parts[4]}
	default:
		return objectID{}, false
	}
	return id, validID(id) == nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir) // #nosec G304 -- a directory of the store
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("sync directory: %w", err)
	}
	return nil
}

// publish gives tmp the name final unless final exists (an error wrapping
// fs.ErrExist), atomically: rename without replace, or link(2), which never
// replaces, where the file system cannot do that.
func publish(tmp, final string) error {
	if ok, err := renameNoReplace(tmp, final); ok {
		return err
	}
	if err := os.Link(tmp, final); err != nil {
		return err
	}
	// The object is complete under its name; the temporary name goes now or
	// at the next start.
	_ = os.Remove(tmp)
	return nil
}
