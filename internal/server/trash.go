package server

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/coffer-backup/coffer/internal/atrest"
	"github.com/coffer-backup/coffer/internal/server/state"
	"github.com/coffer-backup/coffer/internal/serverdb"
	"github.com/coffer-backup/coffer/internal/storage"
	"github.com/coffer-backup/coffer/internal/wire"
)

// TrashDir is where objects deleted under a grant wait before they are
// gone, below the state directory: trash/<client>/<repo>/<deleted, Unix
// nanoseconds>/<the object's path in the repository>. An object keeps its
// sealed bytes (its at-rest encryption binds it to its client, repository
// and name), so moving it back restores it as it was.
const TrashDir = "trash"

// DefaultTrashDays is how many days deleted objects stay in the trash.
const DefaultTrashDays = 7

// ErrNoTrash: the trash holds nothing for that client or repository.
var ErrNoTrash = errors.New("nothing in the trash")

// TrashEntry is one object in the trash.
type TrashEntry struct {
	Client, Repo string
	Object       string // the object's handle, "kind/name" or "config"
	Deleted      time.Time
	Size         int64 // its content size
	rel          string
	handle       storage.Handle
}

// trash moves objects between the object tree and the trash, through a
// root opened on the state directory, so neither path leaves it.
type trash struct {
	root *os.Root
}

func openTrash(dir string) (*trash, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("open the state directory: %w", err)
	}
	if err := root.MkdirAll(TrashDir, 0o700); err != nil {
		_ = root.Close()
		return nil, fmt.Errorf("make the trash: %w", err)
	}
	return &trash{root: root}, nil
}

func (t *trash) close() error {
	if t == nil {
		return nil
	}
	return t.root.Close()
}

// objectPath is an object's path inside its repository's directory, as
// local storage lays it out.
func objectPath(h storage.Handle) string {
	switch h.Kind {
	case storage.KindConfig:
		return "config"
	case storage.KindData:
		return path.Join(string(h.Kind), shard(h.Name), h.Name)
	}
	return path.Join(string(h.Kind), h.Name)
}

// put moves an object of client's repository into the trash, marked
// deleted at now.
func (t *trash) put(client, repo string, h storage.Handle, now time.Time) error {
	if err := wire.ValidateClientName(client); err != nil {
		return err
	}
	if err := wire.ValidateRepo(repo); err != nil {
		return err
	}
	rel := objectPath(h)
	src := filepath.Join(state.ObjectsDir, client, repo, rel)
	dst := filepath.Join(TrashDir, client, repo, strconv.FormatInt(now.UnixNano(), 10), rel)
	if _, err := t.root.Lstat(src); errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%s: %w", h, storage.ErrNotFound)
	}
	if err := t.root.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
		return fmt.Errorf("move %s to the trash: %w", h, err)
	}
	if err := t.root.Rename(src, dst); err != nil {
		return fmt.Errorf("move %s to the trash: %w", h, err)
	}
	return nil
}

// list returns the trash's entries for client (all clients if empty) and
// repository repo (all if empty), oldest deletion first.
func (t *trash) list(client, repo string) ([]TrashEntry, error) {
	base := TrashDir
	if client != "" {
		if err := wire.ValidateClientName(client); err != nil {
			return nil, err
		}
		base = path.Join(base, client)
		if repo != "" {
			if err := wire.ValidateRepo(repo); err != nil {
				return nil, err
			}
			base = path.Join(base, repo)
		}
	}
	var out []TrashEntry
	err := fs.WalkDir(t.root.FS(), base, func(p string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil || d.IsDir() {
			return err
		}
		e, ok := parseTrashPath(p)
		if !ok || !d.Type().IsRegular() {
			return nil // not ours: left alone
		}
		if fi, err := d.Info(); err == nil {
			e.Size, _ = atrest.ContentSize(fi.Size())
		}
		out = append(out, e)
		return nil
	})
	slices.SortStableFunc(out, func(a, b TrashEntry) int { return a.Deleted.Compare(b.Deleted) })
	return out, err
}

// parseTrashPath reads trash/<client>/<repo>/<nanos>/<object path>.
func parseTrashPath(p string) (TrashEntry, bool) {
	parts := strings.SplitN(p, "/", 5)
	if len(parts) != 5 || parts[0] != TrashDir {
		return TrashEntry{}, false
	}
	nanos, err := strconv.ParseInt(parts[3], 10, 64)
	if err != nil || nanos <= 0 {
		return TrashEntry{}, false
	}
	ns, h, ok := (&objectStore{}).parseObjectPath(path.Join(parts[1], parts[2], parts[4]))
	if !ok {
		return TrashEntry{}, false
	}
	return TrashEntry{Client: ns.Client, Repo: ns.Repo, Object: h.String(), Deleted: time.Unix(0, nanos).UTC(), rel: p, handle: h}, true
}

// restore moves an entry back into the object tree. An object that exists
// again under its name (names are content hashes) stays, and the trash's
// copy goes; restored reports which happened.
func (t *trash) restore(e TrashEntry) (restored bool, err error) {
	dst := filepath.Join(state.ObjectsDir, e.Client, e.Repo, objectPath(e.handle))
	if _, err := t.root.Lstat(dst); err == nil {
		return false, t.root.Remove(e.rel)
	}
	if err := t.root.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
		return false, fmt.Errorf("restore %s: %w", e.Object, err)
	}
	if err := t.root.Rename(e.rel, dst); err != nil {
		return false, fmt.Errorf("restore %s: %w", e.Object, err)
	}
	return true, nil
}

// purge removes the trash's deletions made before cutoff and returns how
// many objects went.
func (t *trash) purge(cutoff time.Time) (int, error) {
	entries, err := t.list("", "")
	if err != nil {
		return 0, err
	}
	n := 0
	dirs := map[string]bool{}
	for _, e := range entries {
		if !e.Deleted.Before(cutoff) {
			continue
		}
		if err := t.root.Remove(e.rel); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return n, err
		}
		n++
		dirs[strings.Join(strings.SplitN(e.rel, "/", 5)[:4], "/")] = true
	}
	for d := range dirs {
		t.removeEmptyDirs(d)
	}
	return n, nil
}

// ListTrash lists the trash of the state directory dir for client (all if
// empty) and repository repo (all if empty), oldest deletion first.
func ListTrash(dir, client, repo string) ([]TrashEntry, error) {
	t, err := openTrash(dir)
	if err != nil {
		return nil, err
	}
	defer func() { _ = t.close() }()
	return t.list(client, repo)
}

// RestoreTrash puts client's objects in the trash (of repository repo, or
// of all its repositories if empty) back where they were, marks restored
// snapshots as existing again for retention, and logs an
// ActionTrashRestore event for each. It can run beside a running server.
// ErrNoTrash if there is nothing to restore.
func RestoreTrash(ctx context.Context, dir string, db serverdb.DB, client, repo string, now time.Time) ([]TrashEntry, error) {
	if client == "" {
		return nil, fmt.Errorf("%w: restore needs a client", storage.ErrInvalidName)
	}
	t, err := openTrash(dir)
	if err != nil {
		return nil, err
	}
	defer func() { _ = t.close() }()
	entries, err := t.list(client, repo)
	if err != nil {
		return nil, err
	}
	if len(entries) == 0 {
		return nil, fmt.Errorf("%w: client %s", ErrNoTrash, client)
	}
	var done []TrashEntry
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return done, err
		}
		restored, err := t.restore(e)
		if err != nil {
			return done, err
		}
		if e.handle.Kind == storage.KindSnapshots {
			if err := db.SetStampDeleted(ctx, e.Client, e.Repo, e.handle.Name, time.Time{}); err != nil {
				return done, err
			}
		}
		detail := "restored"
		if !restored {
			detail = "present already; the trash's copy removed"
		}
		if err := db.LogEvent(ctx, serverdb.Event{Time: now, Client: e.Client, Repo: e.Repo, Object: e.Object, Action: serverdb.ActionTrashRestore, Detail: detail}); err != nil {
			return done, err
		}
		done = append(done, e)
	}
	t.removeEmptyDirs(path.Join(TrashDir, client, repo))
	return done, nil
}

// removeEmptyDirs removes the empty directories at and below dir, deepest
// first; a directory holding anything stays.
func (t *trash) removeEmptyDirs(dir string) {
	var dirs []string
	_ = fs.WalkDir(t.root.FS(), dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			dirs = append(dirs, p)
		}
		return nil
	})
	for _, d := range slices.Backward(dirs) {
		_ = t.root.Remove(d) // fails, as it should, on a directory not empty
	}
}

// PurgeTrash removes for good what was deleted into the trash more than
// days days before now, logging an ActionTrashPurge event when anything
// went, and returns how many objects it removed.
func (s *Server) PurgeTrash(ctx context.Context, days int, now time.Time) (int, error) {
	n, err := s.trash.purge(now.AddDate(0, 0, -days))
	if n > 0 {
		if lerr := s.cfg.DB.LogEvent(ctx, serverdb.Event{Time: now, Action: serverdb.ActionTrashPurge,
			Detail: fmt.Sprintf("objects=%d trash_days=%d", n, days)}); lerr != nil {
			s.log.Warn("audit log", "err", lerr)
		}
	}
	return n, err
}
