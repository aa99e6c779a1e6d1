package objstore

import (
	"context"
	"errors"
	"fmt"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/coffer-backup/coffer/internal/atrest"
	"github.com/coffer-backup/coffer/internal/storage"
	"github.com/coffer-backup/coffer/internal/wire"
)

// TrashEntry is one object in the trash. An object keeps its sealed bytes
// there (its at-rest encryption binds it to its client, repository and
// name, not to where it lies), so moving it back restores it as it was.
type TrashEntry struct {
	Client, Repo string
	Object       string // the object's handle, "kind/name" or "config"
	Deleted      time.Time
	Size         int64 // its content size
	rel          string
	handle       storage.Handle
}

// Handle is the entry's object handle.
func (e TrashEntry) Handle() storage.Handle { return e.handle }

// Trash moves an object of client's repository into the trash, marked
// deleted at now; storage.ErrNotFound if it is not there.
func (s *Store) Trash(ctx context.Context, client, repo string, h storage.Handle, now time.Time) error {
	rel, err := repoRel(client, repo)
	if err != nil {
		return err
	}
	if err := storage.ValidateHandle(h); err != nil {
		return err
	}
	obj := LayoutPath(h)
	dst := path.Join(rel, strconv.FormatInt(now.UnixNano(), 10), obj)
	err = s.b.move(ctx, objectSpace, path.Join(rel, obj), trashSpace, dst)
	s.b.forget(rel, h)
	if errors.Is(err, storage.ErrNotFound) {
		return fmt.Errorf("%s: %w", h, storage.ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("move %s to the trash: %w", h, err)
	}
	return nil
}

// TrashList returns the trash's entries for client (all clients if
// empty) and repository repo (all if empty), oldest deletion first.
func (s *Store) TrashList(ctx context.Context, client, repo string) ([]TrashEntry, error) {
	dir := ""
	if client != "" {
		if err := wire.ValidateClientName(client); err != nil {
			return nil, err
		}
		dir = client
		if repo != "" {
			if err := wire.ValidateRepo(repo); err != nil {
				return nil, err
			}
			dir = path.Join(dir, repo)
		}
	}
	var out []TrashEntry
	err := s.b.walk(ctx, trashSpace, dir, func(f File) error {
		e, ok := parseTrashPath(f.Path)
		if !ok || !f.Regular {
			return nil // not ours: left alone
		}
		e.Size, _ = atrest.ContentSize(f.Size)
		out = append(out, e)
		return nil
	})
	slices.SortStableFunc(out, func(a, b TrashEntry) int { return a.Deleted.Compare(b.Deleted) })
	return out, err
}

// parseTrashPath reads <client>/<repo>/<nanos>/<object path>.
func parseTrashPath(p string) (TrashEntry, bool) {
	parts := strings.SplitN(p, "/", 4)
	if len(parts) != 4 {
		return TrashEntry{}, false
	}
	nanos, err := strconv.ParseInt(parts[2], 10, 64)
	if err != nil || nanos <= 0 {
		return TrashEntry{}, false
	}
	ns, h, ok := ParseObjectPath(path.Join(parts[0], parts[1], parts[3]))
	if !ok {
		return TrashEntry{}, false
	}
	return TrashEntry{Client: ns.Client, Repo: ns.Repo, Object: h.String(), Deleted: time.Unix(0, nanos).UTC(), rel: p, handle: h}, true
}

// TrashRestore moves an entry back into its repository. An object that
// exists again under its name (names are content hashes) stays, and the
// trash's copy goes; restored reports which happened.
func (s *Store) TrashRestore(ctx context.Context, e TrashEntry) (restored bool, err error) {
	dst := path.Join(e.Client, e.Repo, LayoutPath(e.handle))
	if _, err := s.b.stat(ctx, objectSpace, dst); err == nil {
		return false, s.b.remove(ctx, trashSpace, e.rel)
	} else if !errors.Is(err, storage.ErrNotFound) {
		return false, fmt.Errorf("restore %s: %w", e.Object, err)
	}
	if err := s.b.move(ctx, trashSpace, e.rel, objectSpace, dst); err != nil {
		return false, fmt.Errorf("restore %s: %w", e.Object, err)
	}
	return true, nil
}

// TrashTidy removes what emptied directories of client's (and repo's)
// trash are left, where the store has directories.
func (s *Store) TrashTidy(client, repo string) {
	if wire.ValidateClientName(client) != nil || repo != "" && wire.ValidateRepo(repo) != nil {
		return
	}
	s.b.tidy(trashSpace, path.Join(client, repo))
}

// TrashPurge removes the trash's deletions made before cutoff and returns
// how many objects went.
func (s *Store) TrashPurge(ctx context.Context, cutoff time.Time) (int, error) {
	entries, err := s.TrashList(ctx, "", "")
	if err != nil {
		return 0, err
	}
	n := 0
	dirs := map[string]bool{}
	for _, e := range entries {
		if !e.Deleted.Before(cutoff) {
			continue
		}
		if err := s.b.remove(ctx, trashSpace, e.rel); err != nil && !errors.Is(err, storage.ErrNotFound) {
			return n, err
		}
		n++
		dirs[strings.Join(strings.SplitN(e.rel, "/", 4)[:3], "/")] = true
	}
	for d := range dirs {
		s.b.tidy(trashSpace, d)
	}
	return n, nil
}
