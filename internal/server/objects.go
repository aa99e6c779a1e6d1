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

	"github.com/coffer-backup/coffer/internal/atomicfile"
	"github.com/coffer-backup/coffer/internal/atrest"
	"github.com/coffer-backup/coffer/internal/storage"
	"github.com/coffer-backup/coffer/internal/storage/local"
	"github.com/coffer-backup/coffer/internal/wire"
)

// ErrCorrupt is wrapped by every error of a stored object that does not
// verify: bit rot, truncation, tampering, or a file moved to another name.
var ErrCorrupt = atrest.ErrCorrupt

// objectStore keeps every client's repositories: each is a local storage
// under objects/<client>/<repo>, sealed by the at-rest decorator. Every
// method validates the names it joins into a path.
type objectStore struct {
	root string // <dir>/objects
	key  *atrest.Key
}

func (s *objectStore) repoDir(client, repo string) (string, error) {
	if err := wire.ValidateClientName(client); err != nil {
		return "", err
	}
	if err := wire.ValidateRepo(repo); err != nil {
		return "", err
	}
	return filepath.Join(s.root, client, repo), nil
}

// open returns the storage of a client's repository; the caller closes it.
// A missing repository fails with storage.ErrNoRepository.
func (s *objectStore) open(client, repo string) (*atrest.Storage, error) {
	dir, err := s.repoDir(client, repo)
	if err != nil {
		return nil, err
	}
	l, err := local.OpenDir(dir)
	if err != nil {
		return nil, fmt.Errorf("repository %s: %w", repo, storage.ErrNoRepository)
	}
	return atrest.New(l, s.key, atrest.Namespace{Client: client, Repo: repo}), nil
}

// create makes a new, empty repository; storage.ErrExists if it is there.
func (s *objectStore) create(client, repo string) error {
	dir, err := s.repoDir(client, repo)
	if err != nil {
		return err
	}
	if _, err := os.Lstat(dir); err == nil { // #nosec G703 -- repoDir validated both names
		return fmt.Errorf("repository %s: %w", repo, storage.ErrExists)
	}
	clientDir := filepath.Dir(dir)
	if err := os.Mkdir(clientDir, 0o700); err == nil { // #nosec G703 -- repoDir validated the client name
		if err := atomicfile.SyncDir(s.root); err != nil {
			return err
		}
	} else if !errors.Is(err, fs.ErrExist) {
		return err
	}
	l, err := local.Create(dir)
	if errors.Is(err, local.ErrDirNotEmpty) {
		return fmt.Errorf("repository %s: %w", repo, storage.ErrExists)
	}
	if err != nil {
		return err
	}
	return l.Close()
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
	repos, err := os.ReadDir(filepath.Join(s.root, client))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return u, err
	}
	for _, r := range repos {
		if r.IsDir() {
			u.repos++
		}
	}
	err = s.walk(ctx, filepath.Join(s.root, client), func(path string, d fs.DirEntry) error {
		if _, _, ok := s.parseObjectPath(path); !ok || !d.Type().IsRegular() {
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

// walk calls fn for every file below dir; a missing dir has none.
func (s *objectStore) walk(ctx context.Context, dir string, fn func(string, fs.DirEntry) error) error {
	return filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
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
		return fn(path, d)
	})
}

// parseObjectPath turns a path below root back into the client, repository
// and handle of an object, or reports that it is not one.
func (s *objectStore) parseObjectPath(path string) (ns atrest.Namespace, h storage.Handle, ok bool) {
	rel, err := filepath.Rel(s.root, path)
	if err != nil {
		return ns, h, false
	}
	parts := strings.Split(filepath.ToSlash(rel), "/")
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
	err = s.walk(ctx, s.root, func(path string, d fs.DirEntry) error {
		if !strings.HasPrefix(d.Name(), local.TempPrefix) {
			return nil
		}
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
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
	clients, err := os.ReadDir(s.root)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, c := range clients {
		repos, err := os.ReadDir(filepath.Join(s.root, c.Name()))
		if err != nil {
			continue // not a client directory
		}
		for _, r := range repos {
			if err := ctx.Err(); err != nil {
				return n, err
			}
			moved, err := migrateRepo(filepath.Join(s.root, c.Name(), r.Name()))
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
// the directory dir/config, and renames dir/config.v1 to dir/config.
func migrateRepo(dir string) (bool, error) {
	old, parked, final := filepath.Join(dir, configV1, "config"), filepath.Join(dir, "config.v1"), filepath.Join(dir, "config")
	moved := false
	if err := os.Rename(old, parked); err == nil {
		moved = true
	} else if !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, syscall.ENOTDIR) {
		return false, err
	}
	if fi, err := os.Lstat(final); err == nil && fi.IsDir() {
		if err := os.Remove(final); err != nil {
			return moved, err
		}
	}
	if _, err := os.Lstat(parked); err == nil {
		if err := os.Rename(parked, final); err != nil {
			return moved, err
		}
		moved = true
	}
	if !moved {
		return false, nil
	}
	return true, atomicfile.SyncDir(dir)
}
