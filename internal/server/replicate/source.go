package replicate

import (
	"context"
	"sort"
	"time"

	"github.com/coffer-backup/coffer/internal/atrest"
	"github.com/coffer-backup/coffer/internal/server/objstore"
	"github.com/coffer-backup/coffer/internal/storage"
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

// Source is the primary's objects (objstore): each client's
// repositories, sealed with the at-rest key, in the state directory or a
// bucket. Reading through it removes the at-rest layer and yields the
// client's ciphertext.
type Source struct {
	Store *objstore.Store
}

// replicated reports whether objects of kind are copied: locks are a
// writer's transient state and are not.
func replicated(k storage.Kind) bool { return k != storage.KindLocks }

// Repos lists the repositories of clients (empty: every client), sorted.
func (s Source) Repos(ctx context.Context, clients []string) ([]RepoKey, error) {
	if len(clients) == 0 {
		var err error
		if clients, err = s.Store.Clients(ctx); err != nil {
			return nil, err
		}
	}
	var out []RepoKey
	for _, c := range clients {
		repos, err := s.Store.Repos(ctx, c)
		if err != nil {
			return nil, err
		}
		for _, r := range repos {
			out = append(out, RepoKey{c, r})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].String() < out[j].String() })
	return out, nil
}

// Open returns the repository's storage through the at-rest layer.
func (s Source) Open(ctx context.Context, k RepoKey) (*atrest.Storage, error) {
	return s.Store.Open(ctx, k.Client, k.Repo)
}

// objects lists the replicated objects of a repository (a missing
// repository has none); unpublished uploads are left out.
func (s Source) objects(ctx context.Context, k RepoKey) (map[storage.Handle]objectInfo, error) {
	out := map[storage.Handle]objectInfo{}
	err := s.Store.Walk(ctx, k.Client, k.Repo, func(o objstore.Object) error {
		size, ok := atrest.ContentSize(o.Size)
		if !o.OK || !ok || !replicated(o.Handle.Kind) {
			return nil
		}
		out[o.Handle] = objectInfo{h: o.Handle, size: size, mtime: o.ModTime}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
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
func LayoutPath(h storage.Handle) string { return objstore.LayoutPath(h) }
