package replicate

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/coffer-backup/coffer/internal/atrest"
	"github.com/coffer-backup/coffer/internal/storage"
	"github.com/coffer-backup/coffer/internal/storage/local"
	"github.com/coffer-backup/coffer/internal/wire"
)

// RepoKey names one client's repository.
type RepoKey struct{ Client, Repo string }

func (k RepoKey) String() string { return k.Client + "/" + k.Repo }

// objectInfo is one object of a repository at the primary: its handle,
// content size and when its file was written.
type objectInfo struct {
	h     storage.Handle
	size  int64
	mtime time.Time
}

// Source is the primary's object tree (state.ObjectsDir): each client's
// repositories in the local layout, sealed with the at-rest key. Reading
// through it removes the at-rest layer and yields the client's ciphertext.
type Source struct {
	Root string // the state directory's objects/
	Key  *atrest.Key
}

// replicated reports whether objects of kind are copied: locks are a
// writer's transient state and are not.
func replicated(k storage.Kind) bool { return k != storage.KindLocks }

// Repos lists the repositories of clients (empty: every client), sorted.
func (s Source) Repos(clients []string) ([]RepoKey, error) {
	if len(clients) == 0 {
		entries, err := os.ReadDir(s.Root)
		if err != nil {
			return nil, fmt.Errorf("list clients: %w", err)
		}
		for _, e := range entries {
			if e.IsDir() && wire.ValidateClientName(e.Name()) == nil {
				clients = append(clients, e.Name())
			}
		}
	}
	var out []RepoKey
	for _, c := range clients {
		if err := wire.ValidateClientName(c); err != nil {
			return nil, err
		}
		entries, err := os.ReadDir(filepath.Join(s.Root, c))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("list repositories of %s: %w", c, err)
		}
		for _, e := range entries {
			if e.IsDir() && wire.ValidateRepo(e.Name()) == nil {
				out = append(out, RepoKey{c, e.Name()})
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].String() < out[j].String() })
	return out, nil
}

func (s Source) dir(k RepoKey) (string, error) {
	if err := wire.ValidateClientName(k.Client); err != nil {
		return "", err
	}
	if err := wire.ValidateRepo(k.Repo); err != nil {
		return "", err
	}
	return filepath.Join(s.Root, k.Client, k.Repo), nil
}

// Open returns the repository's storage through the at-rest layer.
func (s Source) Open(k RepoKey) (*atrest.Storage, error) {
	dir, err := s.dir(k)
	if err != nil {
		return nil, err
	}
	l, err := local.OpenDir(dir)
	if err != nil {
		return nil, err
	}
	return atrest.New(l, s.Key, atrest.Namespace{Client: k.Client, Repo: k.Repo}), nil
}

// objects lists the replicated objects of a repository from its files
// (a missing repository has none); unpublished uploads are left out.
func (s Source) objects(ctx context.Context, k RepoKey) (map[storage.Handle]objectInfo, error) {
	dir, err := s.dir(k)
	if err != nil {
		return nil, err
	}
	out := map[storage.Handle]objectInfo{}
	add := func(kind storage.Kind, path string) error {
		fi, err := os.Lstat(path)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		h := storage.Handle{Kind: kind, Name: filepath.Base(path)}
		size, ok := atrest.ContentSize(fi.Size())
		if !fi.Mode().IsRegular() || !ok || storage.ValidateHandle(h) != nil {
			return nil
		}
		out[h] = objectInfo{h: h, size: size, mtime: fi.ModTime()}
		return nil
	}
	if err := add(storage.KindConfig, filepath.Join(dir, "config")); err != nil {
		return nil, err
	}
	for _, kind := range storage.Kinds {
		if kind == storage.KindConfig || !replicated(kind) {
			continue
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		files, err := kindFiles(filepath.Join(dir, string(kind)), kind == storage.KindData)
		if err != nil {
			return nil, err
		}
		for _, f := range files {
			if err := add(kind, f); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

// kindFiles lists the files of a kind's directory (sharded: one level of
// shard directories, each holding names that start with it), leaving out
// unpublished uploads; a missing directory has none.
func kindFiles(dir string, sharded bool) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range entries {
		name := e.Name()
		switch {
		case strings.HasPrefix(name, local.TempPrefix):
		case sharded && e.IsDir():
			inner, err := kindFiles(filepath.Join(dir, name), false)
			if err != nil {
				return nil, err
			}
			for _, f := range inner {
				if shard(filepath.Base(f)) == name {
					out = append(out, f)
				}
			}
		case !sharded:
			out = append(out, filepath.Join(dir, name))
		}
	}
	return out, nil
}

func shard(name string) string {
	if len(name) < 2 {
		return name
	}
	return name[:2]
}

// Object is one replicated object of a repository at the primary.
type Object struct {
	Handle storage.Handle
	Size   int64
}

// Objects lists the objects of k that replication copies (not locks),
// config first, then by kind and name.
func (s Source) Objects(ctx context.Context, k RepoKey) ([]Object, error) {
	m, err := s.objects(ctx, k)
	if err != nil {
		return nil, err
	}
	out := make([]Object, 0, len(m))
	for h, o := range m {
		out = append(out, Object{Handle: h, Size: o.size})
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i].Handle, out[j].Handle
		if x, y := kindOrder(a.Kind), kindOrder(b.Kind); x != y {
			return x < y
		}
		return a.Name < b.Name
	})
	return out, nil
}

// LayoutPath is where a repository's layout keeps h, '/'-separated:
// config, KIND/NAME, and packs in data/XY/NAME.
func LayoutPath(h storage.Handle) string {
	switch h.Kind {
	case storage.KindConfig:
		return "config"
	case storage.KindData:
		return "data/" + shard(h.Name) + "/" + h.Name
	}
	return string(h.Kind) + "/" + h.Name
}
