package server

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/coffer-backup/coffer/internal/server/objstore"
	"github.com/coffer-backup/coffer/internal/serverdb"
	"github.com/coffer-backup/coffer/internal/storage"
)

// TrashDir is where objects deleted under a grant wait before they are
// gone, below the state directory: trash/<client>/<repo>/<deleted, Unix
// nanoseconds>/<the object's path in the repository> (in a bucket:
// PREFIX/.trash/..., objstore.TrashPrefix). An object keeps its sealed
// bytes (its at-rest encryption binds it to its client, repository and
// name), so moving it back restores it as it was.
const TrashDir = objstore.TrashDir

// DefaultTrashDays is how many days deleted objects stay in the trash.
const DefaultTrashDays = 7

// ErrNoTrash: the trash holds nothing for that client or repository.
var ErrNoTrash = errors.New("nothing in the trash")

// TrashEntry is one object in the trash.
type TrashEntry = objstore.TrashEntry

// ListTrash lists the trash of the state directory dir for client (all if
// empty) and repository repo (all if empty), oldest deletion first.
func ListTrash(ctx context.Context, dir, client, repo string) ([]TrashEntry, error) {
	st, err := OpenObjectsDir(ctx, dir)
	if err != nil {
		return nil, err
	}
	defer func() { _ = st.Close() }()
	return st.TrashList(ctx, client, repo)
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
	st, err := OpenObjectsDir(ctx, dir)
	if err != nil {
		return nil, err
	}
	defer func() { _ = st.Close() }()
	entries, err := st.TrashList(ctx, client, repo)
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
		restored, err := st.TrashRestore(ctx, e)
		if err != nil {
			return done, err
		}
		if restored {
			// Counted again, beside servers that may be running; a usage not
			// recorded yet is counted whole when a server first meets the client.
			d := serverdb.Usage{Charged: objectCharge(e.Size), Objects: 1}
			if _, err := db.AddUsage(ctx, e.Client, d, serverdb.UsageLimits{}); err != nil && !errors.Is(err, serverdb.ErrNotFound) {
				return done, err
			}
		}
		if e.Handle().Kind == storage.KindSnapshots {
			if err := db.SetStampDeleted(ctx, e.Client, e.Repo, e.Handle().Name, time.Time{}); err != nil {
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
	st.TrashTidy(client, repo)
	return done, nil
}

// PurgeTrash removes for good what was deleted into the trash more than
// days days before now, logging an ActionTrashPurge event when anything
// went, and returns how many objects it removed.
func (s *Server) PurgeTrash(ctx context.Context, days int, now time.Time) (int, error) {
	n, err := s.store.TrashPurge(ctx, now.AddDate(0, 0, -days))
	if n > 0 {
		if lerr := s.cfg.DB.LogEvent(ctx, serverdb.Event{Time: now, Action: serverdb.ActionTrashPurge,
			Detail: fmt.Sprintf("objects=%d trash_days=%d", n, days)}); lerr != nil {
			s.log.Warn("audit log", "err", lerr)
		}
	}
	return n, err
}
