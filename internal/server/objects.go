package server

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/coffer-backup/coffer/internal/atrest"
	"github.com/coffer-backup/coffer/internal/server/state"
	"github.com/coffer-backup/coffer/internal/storage"
	"github.com/coffer-backup/coffer/internal/storage/local"
	"github.com/coffer-backup/coffer/internal/wire"
)

// ErrCorrupt is wrapped by every error of a stored object that does not
// verify: bit rot, truncation, tampering, or a file moved to another name.
var ErrCorrupt = atrest.ErrCorrupt

// objectStore keeps every client's repositories: each is a local storage
// under objects/<client>/<repo>, sealed by the at-rest decorator. Every
// method validates the names it joins into a path, and every path is
// resolved through tree, which never leaves objects/: a symbolic link
// planted in the tree is refused or, raced in, stays inside it.
type objectStore struct {
	root  string   // <dir>/objects
	tree  *os.Root // root, opened
	key   *atrest.Key
	repos *repoCache
}

// openObjectStore opens the object tree of the state directory dir; the
// caller closes it.
func openObjectStore(dir string, key *atrest.Key) (*objectStore, error) {
	root := filepath.Join(dir, state.ObjectsDir)
	tree, err := os.OpenRoot(root)
	if err != nil {
		return nil, fmt.Errorf("open the object tree: %w", err)
	}
	return &objectStore{root: root, tree: tree, key: key, repos: newRepoCache(openRepos)}, nil
}

func (s *objectStore) close() error {
	s.repos.close()
	return s.tree.Close()
}

// repoRel is the directory of a client's repository, relative to root.
func (s *objectStore) repoRel(client, repo string) (string, error) {
	if err := wire.ValidateClientName(client); err != nil {
		return "", err
	}
	if err := wire.ValidateRepo(repo); err != nil {
		return "", err
	}
	return filepath.Join(client, repo), nil
}

// open returns the storage of a client's repository; the caller closes it.
// A missing repository fails with storage.ErrNoRepository, one whose
// directory is a symbolic link with an error wrapping local.ErrSymlink.
// The repository stays open in s.repos after the caller is done.
func (s *objectStore) open(client, repo string) (*atrest.Storage, error) {
	rel, err := s.repoRel(client, repo)
	if err != nil {
		return nil, err
	}
	openDir := func() (*local.Local, error) { return local.OpenDirIn(s.tree, rel) }
	var l *local.Local
	release := func() {}
	if dir, lerr := s.tree.Lstat(rel); lerr == nil {
		l, release, err = s.repos.acquire(rel, dir, openDir)
	} else {
		// Gone or not reachable: forget what was open, and let OpenDirIn
		// say why.
		s.repos.forget(rel)
		l, err = openDir()
		if err == nil {
			release = func() { _ = l.Close() }
		}
	}
	if errors.Is(err, storage.ErrNoRepository) {
		return nil, fmt.Errorf("repository %s: %w", repo, storage.ErrNoRepository)
	}
	if err != nil {
		return nil, fmt.Errorf("repository %s: %w", repo, err)
	}
	return atrest.New(sharedLocal{l, release}, s.key, atrest.Namespace{Client: client, Repo: repo}), nil
}

// forget makes the store let go of an object of a client's repository
// that was moved out of the tree by other means than its storage's
// Remove (the trash), so that no open file of it can still be read.
func (s *objectStore) forget(client, repo string, h storage.Handle) {
	if rel, err := s.repoRel(client, repo); err == nil {
		s.repos.forgetObject(rel, h)
	}
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

// create makes a new, empty repository; storage.ErrExists if it is there.
func (s *objectStore) create(client, repo string) error {
	rel, err := s.repoRel(client, repo)
	if err != nil {
		return err
	}
	if _, err := s.tree.Lstat(rel); err == nil {
		return fmt.Errorf("repository %s: %w", repo, storage.ErrExists)
	}
	if err := s.tree.Mkdir(client, 0o700); err == nil {
		if err := s.syncRoot(); err != nil {
			return err
		}
	} else if !errors.Is(err, fs.ErrExist) {
		return err
	}
	l, err := local.CreateIn(s.tree, rel)
	if errors.Is(err, local.ErrDirNotEmpty) {
		return fmt.Errorf("repository %s: %w", repo, storage.ErrExists)
	}
	if err != nil {
		return err
	}
	return l.Close()
}

// syncRoot fsyncs the object tree's top directory.
func (s *objectStore) syncRoot() error {
	d, err := s.tree.Open(".")
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("sync directory %s: %w", s.root, err)
	}
	return nil
}

// storedUsage is what a client stores: its objects' charges (limits.go),
// its object count and its repository count.
type storedUsage struct {
	charged, objects, repos int64
}

// usage adds up what a client stores over all its repositories.
func (s *objectStore) usage(ctx context.Context, client string) (storedUsage, error) {
	var u storedUsage
	if err := wire.ValidateClientName(client); err != nil {
		return u, err
	}
	repos, err := fs.ReadDir(s.tree.FS(), client)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return u, err
	}
	for _, r := range repos {
		if r.IsDir() {
			u.repos++
		}
	}
	err = s.walk(ctx, client, func(rel string, d fs.DirEntry) error {
		if _, _, ok := s.parseObjectPath(rel); !ok || !d.Type().IsRegular() {
			return nil
		}
		fi, err := d.Info()
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		if size, ok := atrest.ContentSize(fi.Size()); ok {
			u.charged += objectCharge(size)
			u.objects++
		}
		return nil
	})
	return u, err
}

// walk calls fn for every file below the directory dir of the tree ("."
// for all of it), with its slash-separated path relative to root; a
// missing dir has none. Symbolic links are reported as files, never
// followed.
func (s *objectStore) walk(ctx context.Context, dir string, fn func(string, fs.DirEntry) error) error {
	if fi, err := s.tree.Lstat(dir); errors.Is(err, fs.ErrNotExist) {
		return nil
	} else if err != nil {
		return err
	} else if !fi.IsDir() {
		return fn(dir, fs.FileInfoToDirEntry(fi))
	}
	return fs.WalkDir(s.tree.FS(), dir, func(rel string, d fs.DirEntry, err error) error {
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
		return fn(rel, d)
	})
}

// parseObjectPath turns a slash-separated path relative to root back into
// the client, repository and handle of an object, or reports that it is
// not one.
func (s *objectStore) parseObjectPath(rel string) (ns atrest.Namespace, h storage.Handle, ok bool) {
	parts := strings.Split(rel, "/")
	switch {
	case len(parts) == 3 && parts[2] == "config":
		h = storage.Handle{Kind: storage.KindConfig, Name: "config"}
	case len(parts) == 4 && parts[2] != string(storage.KindData) && parts[2] != string(storage.KindConfig):
		h = storage.Handle{Kind: storage.Kind(parts[2]), Name: parts[3]}
	case len(parts) == 5 && parts[2] == string(storage.KindData) && shard(parts[4]) == parts[3]:
		h = storage.Handle{Kind: storage.KindData, Name: parts[4]}
	default:
		return ns, h, false
	}
	ns = atrest.Namespace{Client: parts[0], Repo: parts[1]}
	if wire.ValidateClientName(ns.Client) != nil || wire.ValidateRepo(ns.Repo) != nil || storage.ValidateHandle(h) != nil {
		return ns, h, false
	}
	return ns, h, true
}

func shard(name string) string {
	if len(name) < 2 {
		return name
	}
	return name[:2]
}

// cleanTemp removes what a killed server left: files in the scratch
// directory and uploads never published in the object tree (the server
// holds the state directory's lock, so no upload is in progress).
func (s *objectStore) cleanTemp(ctx context.Context, tmp string) (int, error) {
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
	err = s.walk(ctx, ".", func(rel string, d fs.DirEntry) error {
		if !strings.HasPrefix(d.Name(), local.TempPrefix) {
			return nil
		}
		if err := s.tree.Remove(rel); err != nil && !errors.Is(err, fs.ErrNotExist) {
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

// migrateLayout moves every repository's config object from config/config
// to config. Each step is atomic and the whole is idempotent, so a crash
// anywhere is completed by the next start.
func (s *objectStore) migrateLayout(ctx context.Context) (int, error) {
	clients, err := fs.ReadDir(s.tree.FS(), ".")
	if err != nil {
		return 0, err
	}
	n := 0
	for _, c := range clients {
		if !c.IsDir() {
			continue // not a client directory
		}
		repos, err := fs.ReadDir(s.tree.FS(), c.Name())
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
			moved, err := migrateRepo(s.tree, filepath.Join(c.Name(), r.Name()))
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
