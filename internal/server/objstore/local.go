package objstore

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"github.com/coffer-backup/coffer/internal/atrest"
	"github.com/coffer-backup/coffer/internal/storage"
	"github.com/coffer-backup/coffer/internal/storage/local"
)

// Directories of a state directory that a local Store keeps.
const (
	ObjectsDir = "objects" // objects/CLIENT/REPO: a local repository layout, sealed
	TrashDir   = "trash"   // trash/CLIENT/REPO/<deleted, Unix ns>/<object's path>
)

// localTree keeps the spaces in a state directory: objects/ and trash/.
// Every path is resolved through an os.Root, so none leaves its tree: a
// symbolic link planted in the tree is refused or, raced in, stays inside.
type localTree struct {
	dir     string   // the state directory
	state   *os.Root // dir, for moves between the two trees
	objects *os.Root // dir/objects
	trash   *os.Root // dir/trash
	repos   *repoCache
}

// OpenDir opens the objects of the state directory dir, which must have
// its objects directory (an error wrapping fs.ErrNotExist otherwise);
// the trash directory is made if missing.
func OpenDir(dir string, key *atrest.Key) (*Store, error) {
	t := &localTree{dir: dir, repos: newRepoCache(openRepos)}
	var err error
	if t.objects, err = os.OpenRoot(filepath.Join(dir, ObjectsDir)); err != nil {
		return nil, fmt.Errorf("open the object tree: %w", err)
	}
	if t.state, err = os.OpenRoot(dir); err != nil {
		_ = t.close()
		return nil, fmt.Errorf("open the state directory: %w", err)
	}
	if err := t.state.MkdirAll(TrashDir, 0o700); err != nil {
		_ = t.close()
		return nil, fmt.Errorf("make the trash: %w", err)
	}
	if t.trash, err = t.state.OpenRoot(TrashDir); err != nil {
		_ = t.close()
		return nil, fmt.Errorf("open the trash: %w", err)
	}
	return &Store{b: t, key: key}, nil
}

func (t *localTree) location() string { return filepath.Join(t.dir, ObjectsDir) }

func (t *localTree) close() error {
	t.repos.close()
	var errs []error
	for _, r := range []*os.Root{t.objects, t.trash, t.state} {
		if r != nil {
			errs = append(errs, r.Close())
		}
	}
	return errors.Join(errs...)
}

func (t *localTree) root(sp space) (*os.Root, string) {
	if sp == trashSpace {
		return t.trash, TrashDir
	}
	return t.objects, ObjectsDir
}

// openRepo returns the repository's local storage. A missing repository
// fails with storage.ErrNoRepository, one whose directory is a symbolic
// link with an error wrapping local.ErrSymlink. The repository stays open
// in t.repos after the caller is done.
func (t *localTree) openRepo(_ context.Context, rel string) (storage.Storage, error) {
	rel = filepath.FromSlash(rel)
	openDir := func() (*local.Local, error) { return local.OpenDirIn(t.objects, rel) }
	dir, err := t.objects.Lstat(rel)
	if err != nil {
		// Gone or not reachable: forget what was open, and let OpenDirIn
		// say why.
		t.repos.forget(rel)
		return openDir()
	}
	l, release, err := t.repos.acquire(rel, dir, openDir)
	if err != nil {
		return nil, err
	}
	return sharedLocal{l, release}, nil
}

// forget drops the open file of object h of the repository rel, moved
// out of the tree by other means than its storage's Remove (the trash),
// so that no open file of it can still be read.
func (t *localTree) forget(rel string, h storage.Handle) {
	t.repos.forgetObject(filepath.FromSlash(rel), h)
}

// sharedLocal is a repository of the cache, used by one request: its
// Close ends the request's use, not the repository.
type sharedLocal struct {
	*local.Local
	release func()
}

func (l sharedLocal) Close() error {
	l.release()
	return nil
}

func (t *localTree) createRepo(_ context.Context, rel string) error {
	rel = filepath.FromSlash(rel)
	if _, err := t.objects.Lstat(rel); err == nil {
		return storage.ErrExists
	}
	client := filepath.Dir(rel)
	if err := t.objects.Mkdir(client, 0o700); err == nil {
		if err := t.syncObjects(); err != nil {
			return err
		}
	} else if !errors.Is(err, fs.ErrExist) {
		return err
	}
	l, err := local.CreateIn(t.objects, rel)
	if errors.Is(err, local.ErrDirNotEmpty) {
		return storage.ErrExists
	}
	if err != nil {
		return err
	}
	return l.Close()
}

// syncObjects fsyncs the object tree's top directory.
func (t *localTree) syncObjects() error {
	d, err := t.objects.Open(".")
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("sync directory %s: %w", t.location(), err)
	}
	return nil
}

func (t *localTree) dirs(_ context.Context, dir string) ([]string, error) {
	if dir == "" {
		dir = "."
	}
	entries, err := fs.ReadDir(t.objects.FS(), dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range entries {
		if e.IsDir() {
			out = append(out, e.Name())
		}
	}
	return out, nil
}

func (t *localTree) walk(ctx context.Context, sp space, dir string, fn func(File) error) error {
	root, _ := t.root(sp)
	if dir == "" {
		dir = "."
	}
	if fi, err := root.Lstat(dir); errors.Is(err, fs.ErrNotExist) {
		return nil
	} else if err != nil {
		return err
	} else if !fi.IsDir() {
		return fn(fileOf(dir, fi))
	}
	return fs.WalkDir(root.FS(), dir, func(rel string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		fi, err := d.Info()
		if errors.Is(err, fs.ErrNotExist) {
			return nil // removed meanwhile
		}
		if err != nil {
			return err
		}
		return fn(fileOf(rel, fi))
	})
}

func fileOf(rel string, fi fs.FileInfo) File {
	return File{Path: rel, Size: fi.Size(), ModTime: fi.ModTime(), Regular: fi.Mode().IsRegular()}
}

func (t *localTree) stat(_ context.Context, sp space, rel string) (File, error) {
	root, _ := t.root(sp)
	fi, err := root.Lstat(filepath.FromSlash(rel))
	if errors.Is(err, fs.ErrNotExist) {
		return File{}, fmt.Errorf("%s: %w", rel, storage.ErrNotFound)
	}
	if err != nil {
		return File{}, err
	}
	return fileOf(rel, fi), nil
}

func (t *localTree) move(_ context.Context, from space, src string, to space, dst string) error {
	_, fromDir := t.root(from)
	_, toDir := t.root(to)
	s, d := filepath.Join(fromDir, filepath.FromSlash(src)), filepath.Join(toDir, filepath.FromSlash(dst))
	if _, err := t.state.Lstat(s); errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%s: %w", src, storage.ErrNotFound)
	}
	if err := t.state.MkdirAll(filepath.Dir(d), 0o700); err != nil {
		return err
	}
	return t.state.Rename(s, d)
}

func (t *localTree) remove(_ context.Context, sp space, rel string) error {
	root, _ := t.root(sp)
	err := root.Remove(filepath.FromSlash(rel))
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%s: %w", rel, storage.ErrNotFound)
	}
	return err
}

func (t *localTree) tidy(sp space, dir string) {
	root, _ := t.root(sp)
	if dir == "" {
		dir = "."
	}
	var dirs []string
	_ = fs.WalkDir(root.FS(), dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() && p != "." {
			dirs = append(dirs, p)
		}
		return nil
	})
	for _, d := range slices.Backward(dirs) {
		_ = root.Remove(d) // fails, as it should, on a directory not empty
	}
}

// Prepare readies the store of a server that starts: in a state
// directory, it removes what a killed server left (files in the scratch
// directory tmp and uploads never published in the object tree; the
// server holds the directory's lock, so no upload is in progress) and
// completes a layout move a crash interrupted. A bucket needs none of it.
func (s *Store) Prepare(ctx context.Context, tmp string) (cleaned, migrated int, err error) {
	t, ok := s.b.(*localTree)
	if !ok {
		return 0, 0, nil
	}
	if cleaned, err = t.cleanTemp(ctx, tmp); err != nil {
		return cleaned, 0, fmt.Errorf("clean interrupted uploads: %w", err)
	}
	migrated, err = s.MigrateLayout(ctx)
	return cleaned, migrated, err
}

func (t *localTree) cleanTemp(ctx context.Context, tmp string) (int, error) {
	entries, err := os.ReadDir(tmp)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(tmp, e.Name())); err != nil {
			return n, err
		}
		n++
	}
	err = t.walk(ctx, objectSpace, "", func(f File) error {
		if !strings.HasPrefix(path.Base(f.Path), local.TempPrefix) {
			return nil
		}
		if err := t.objects.Remove(f.Path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		n++
		return nil
	})
	return n, err
}

// configV1 is where servers before the local layout kept a repository's
// config object: a file config/config; local storage keeps it in config.
const configV1 = "config"

// MigrateLayout moves every repository's config object from
// config/config to config in a state directory (a bucket never had the
// old layout). Each step is atomic and the whole is idempotent, so a
// crash anywhere is completed by the next run.
func (s *Store) MigrateLayout(ctx context.Context) (int, error) {
	t, ok := s.b.(*localTree)
	if !ok {
		return 0, nil
	}
	clients, err := fs.ReadDir(t.objects.FS(), ".")
	if err != nil {
		return 0, err
	}
	n := 0
	for _, c := range clients {
		if !c.IsDir() {
			continue // not a client directory
		}
		repos, err := fs.ReadDir(t.objects.FS(), c.Name())
		if err != nil {
			continue
		}
		for _, r := range repos {
			if err := ctx.Err(); err != nil {
				return n, err
			}
			if !r.IsDir() {
				continue
			}
			moved, err := migrateRepo(t.objects, filepath.Join(c.Name(), r.Name()))
			if err != nil {
				return n, fmt.Errorf("move the config object of %s/%s: %w", c.Name(), r.Name(), err)
			}
			if moved {
				n++
			}
		}
	}
	return n, nil
}

// migrateRepo moves dir/config/config to dir/config.v1 (if there), removes
// the directory dir/config, and renames dir/config.v1 to dir/config; dir
// is relative to tree.
func migrateRepo(tree *os.Root, dir string) (bool, error) {
	old, parked, final := filepath.Join(dir, configV1, "config"), filepath.Join(dir, "config.v1"), filepath.Join(dir, "config")
	moved := false
	if err := tree.Rename(old, parked); err == nil {
		moved = true
	} else if !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, syscall.ENOTDIR) {
		return false, err
	}
	if fi, err := tree.Lstat(final); err == nil && fi.IsDir() {
		if err := tree.Remove(final); err != nil {
			return moved, err
		}
	}
	if _, err := tree.Lstat(parked); err == nil {
		if err := tree.Rename(parked, final); err != nil {
			return moved, err
		}
		moved = true
	}
	if !moved {
		return false, nil
	}
	d, err := tree.Open(dir)
	if err != nil {
		return true, err
	}
	defer func() { _ = d.Close() }()
	return true, d.Sync()
}
