package repository

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/coffer-backup/coffer/internal/crypto"
	"github.com/coffer-backup/coffer/internal/storage"
	"golang.org/x/sync/errgroup"
)

// SaveSnapshot stores a snapshot and sets its ID.
func (r *Repository) SaveSnapshot(ctx context.Context, s *Snapshot) error {
	id, err := r.SaveSealed(ctx, storage.KindSnapshots, crypto.KindSnapshot, s)
	if err != nil {
		return err
	}
	s.ID = id
	return nil
}

// LoadSnapshot loads one snapshot by ID.
func (r *Repository) LoadSnapshot(ctx context.Context, id ID) (*Snapshot, error) {
	return r.loadSnapshot(ctx, id, -1)
}

// loadSnapshot is LoadSnapshot for a snapshot of a listed size (negative:
// unknown).
func (r *Repository) loadSnapshot(ctx context.Context, id ID, size int64) (*Snapshot, error) {
	plain, err := r.loadSealedSized(ctx, storage.Handle{Kind: storage.KindSnapshots, Name: id.String()}, crypto.KindSnapshot, size)
	if err != nil {
		return nil, err
	}
	return DecodeSnapshot(id, plain)
}

// SnapshotError is a snapshot that could not be loaded.
type SnapshotError struct {
	ID  ID
	Err error
}

// LoadSnapshots loads every snapshot, oldest first. Snapshots that fail to
// load are returned separately so listing still works on a damaged repository.
func (r *Repository) LoadSnapshots(ctx context.Context) ([]*Snapshot, []SnapshotError, error) {
	listed, err := r.listSized(ctx, storage.KindSnapshots)
	if err != nil {
		return nil, nil, err
	}
	snaps := make([]*Snapshot, len(listed))
	errs := make([]error, len(listed))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for i, l := range listed {
		g.Go(func() error {
			snaps[i], errs[i] = r.loadSnapshot(gctx, l.ID, l.Size)
			return gctx.Err()
		})
	}
	if err := g.Wait(); err != nil {
		return nil, nil, err
	}
	var out []*Snapshot
	var bad []SnapshotError
	for i := range listed {
		if errs[i] != nil {
			if errors.Is(errs[i], storage.ErrNotFound) {
				continue // forgotten meanwhile
			}
			bad = append(bad, SnapshotError{ID: listed[i].ID, Err: errs[i]})
			continue
		}
		out = append(out, snaps[i])
	}
	SortSnapshots(out)
	return out, bad, nil
}

// SaveTree stores a tree blob.
func (r *Repository) SaveTree(ctx context.Context, t *Tree) (ID, error) {
	b, err := t.Encode()
	if err != nil {
		return ID{}, err
	}
	id, _, err := r.SaveBlob(ctx, TreeBlob, b)
	return id, err
}

// LoadTree loads and validates a tree blob.
func (r *Repository) LoadTree(ctx context.Context, id ID) (*Tree, error) {
	b, err := r.LoadBlob(ctx, TreeBlob, id)
	if err != nil {
		return nil, err
	}
	t, err := DecodeTree(b)
	if err != nil {
		return nil, fmt.Errorf("tree %s: %w", id.Short(), err)
	}
	return t, nil
}

// ForgetRecord authenticates the removal of snapshots (docs/format.md §8).
type ForgetRecord struct {
	Time      time.Time `json:"time"`
	Host      string    `json:"host"`
	Snapshots []ID      `json:"snapshots"`
}

// ForgetSnapshots writes a forget record and then removes the snapshots.
func (r *Repository) ForgetSnapshots(ctx context.Context, host string, ids []ID) error {
	if len(ids) == 0 {
		return nil
	}
	if _, err := r.SaveSealed(ctx, storage.KindForgets, crypto.KindForget, ForgetRecord{Time: time.Now().UTC(), Host: host, Snapshots: ids}); err != nil {
		return fmt.Errorf("write forget record: %w", err)
	}
	for _, id := range ids {
		err := r.st.Remove(ctx, storage.Handle{Kind: storage.KindSnapshots, Name: id.String()})
		if err != nil && !errors.Is(err, storage.ErrNotFound) {
			return fmt.Errorf("remove snapshot %s: %w", id.Short(), err)
		}
	}
	return nil
}

// ForgottenSnapshots returns the IDs named in all forget records.
func (r *Repository) ForgottenSnapshots(ctx context.Context) (map[ID]bool, error) {
	listed, err := r.listSized(ctx, storage.KindForgets)
	if err != nil {
		return nil, err
	}
	out := map[ID]bool{}
	for _, l := range listed {
		id := l.ID
		plain, err := r.loadSealedSized(ctx, storage.Handle{Kind: storage.KindForgets, Name: id.String()}, crypto.KindForget, l.Size)
		if err != nil {
			return nil, err
		}
		var rec ForgetRecord
		if err := json.Unmarshal(plain, &rec); err != nil {
			return nil, fmt.Errorf("forget record %s: %w", id.Short(), err)
		}
		for _, s := range rec.Snapshots {
			out[s] = true
		}
	}
	return out, nil
}

// CondemnedRecord is prune's first-phase deletion record (docs/format.md §10).
type CondemnedRecord struct {
	ID    ID        `json:"-"`
	Time  time.Time `json:"time"`
	Packs []ID      `json:"packs"`
}

// LoadCondemned loads every condemned record.
func (r *Repository) LoadCondemned(ctx context.Context) ([]*CondemnedRecord, error) {
	return r.loadCondemned(ctx, false)
}

// loadCondemned is LoadCondemned; with skipDamaged, records that are
// Unreadable are reported through SetWarnf and left out.
func (r *Repository) loadCondemned(ctx context.Context, skipDamaged bool) ([]*CondemnedRecord, error) {
	listed, err := r.listSized(ctx, storage.KindCondemned)
	if err != nil {
		return nil, err
	}
	var out []*CondemnedRecord
	for _, l := range listed {
		id := l.ID
		plain, err := r.loadSealedSized(ctx, storage.Handle{Kind: storage.KindCondemned, Name: id.String()}, crypto.KindCondemned, l.Size)
		if errors.Is(err, storage.ErrNotFound) {
			continue
		}
		rec := &CondemnedRecord{ID: id}
		if err == nil {
			if jerr := json.Unmarshal(plain, rec); jerr != nil {
				err = fmt.Errorf("condemned/%s: %w: %w", id, ErrUnreadableObject, jerr)
			}
		}
		if skipDamaged && Unreadable(err) {
			r.warnf("%v: ignored (prune stops until it is removed)", err)
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, rec)
	}
	return out, nil
}

// SaveCondemned stores a condemned record.
func (r *Repository) SaveCondemned(ctx context.Context, rec *CondemnedRecord) error {
	id, err := r.SaveSealed(ctx, storage.KindCondemned, crypto.KindCondemned, rec)
	rec.ID = id
	return err
}
