package repository

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/coffer-backup/coffer/internal/crypto"
	"github.com/coffer-backup/coffer/internal/storage"
)

// EditSnapshots changes snapshots (their tags, for `tag`). Storage never
// overwrites a name, so each changed snapshot is written under a new ID,
// in ReplaceSnapshots' crash-safe order: (1) one forget record names the
// old snapshots and their new IDs, (2) each new snapshot is written, (3)
// each old one is removed; rollback detection accepts every state in
// between. edit changes a copy of the snapshot and reports whether it
// changed anything; unchanged snapshots are left alone. A snapshot a
// stopped run already recorded a replacement for is replaced as recorded
// first and the edit applied to its replacement. It returns, for every
// snapshot replaced, its old and final IDs.
func (r *Repository) EditSnapshots(ctx context.Context, host string, ids []ID, edit func(*Snapshot) bool) (map[ID]ID, error) {
	known, err := r.SnapshotReplacements(ctx)
	if err != nil {
		return nil, err
	}
	out := map[ID]ID{}
	var pending []ID
	for _, id := range ids {
		if _, ok := known[id]; ok {
			pending = append(pending, id)
		}
	}
	if len(pending) > 0 {
		if _, err := r.ReplaceSnapshots(ctx, host, pending); err != nil {
			return nil, fmt.Errorf("finish an earlier replacement: %w", err)
		}
	}
	rec := ReplacementRecord{ForgetRecord: ForgetRecord{Time: time.Now().UTC(), Host: host}, ReplacedBy: map[ID]ID{}}
	var edited []*Snapshot
	for _, id := range ids {
		cur := ResolveReplacement(known, id)
		s, err := r.LoadSnapshot(ctx, cur)
		if errors.Is(err, storage.ErrNotFound) {
			continue // forgotten meanwhile
		}
		if err != nil {
			return nil, err
		}
		if cur != id {
			out[id] = cur
		}
		if _, dup := rec.ReplacedBy[cur]; dup || !edit(s) {
			continue
		}
		n := NewRandomID()
		rec.Snapshots = append(rec.Snapshots, cur)
		rec.ReplacedBy[cur] = n
		known[cur] = n
		out[id] = n
		edited = append(edited, s)
	}
	if len(edited) == 0 {
		return out, nil
	}
	if _, err := r.SaveSealed(ctx, storage.KindForgets, crypto.KindForget, rec); err != nil {
		return nil, fmt.Errorf("write replacement record: %w", err)
	}
	for _, s := range edited {
		if err := r.writeEdited(ctx, s, rec.ReplacedBy[s.ID], known); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// writeEdited stores s under nid (its parent named by its replacement, if
// any) and removes s's old object.
func (r *Repository) writeEdited(ctx context.Context, s *Snapshot, nid ID, known map[ID]ID) error {
	old := s.ID
	if s.Parent != nil {
		p := ResolveReplacement(known, *s.Parent)
		s.Parent = &p
	}
	plain, err := json.Marshal(s)
	if err != nil {
		return err
	}
	if _, err := DecodeSnapshot(nid, plain); err != nil {
		return fmt.Errorf("edited snapshot %s: %w", old.Short(), err)
	}
	if err := r.saveRawAs(ctx, storage.Handle{Kind: storage.KindSnapshots, Name: nid.String()}, crypto.KindSnapshot, plain); err != nil {
		return err
	}
	s.ID = nid
	if err := r.st.Remove(ctx, storage.Handle{Kind: storage.KindSnapshots, Name: old.String()}); err != nil && !errors.Is(err, storage.ErrNotFound) {
		return fmt.Errorf("remove snapshot %s: %w", old.Short(), err)
	}
	return nil
}

// TagChange is what `tag` does to a snapshot's tags: Set replaces them
// (an empty, non-nil Set removes all), else Add and Remove apply in that
// order. Tags keep their order; none is listed twice.
type TagChange struct {
	Set    []string
	Add    []string
	Remove []string
}

// Apply changes s's tags and reports whether they changed.
func (c TagChange) Apply(s *Snapshot) bool {
	var tags []string
	if c.Set != nil {
		tags = appendNew(nil, c.Set)
	} else {
		tags = appendNew(slices.Clone(s.Tags), c.Add)
	}
	tags = slices.DeleteFunc(tags, func(t string) bool { return slices.Contains(c.Remove, t) })
	if slices.Equal(tags, s.Tags) {
		return false
	}
	if len(tags) == 0 {
		tags = nil
	}
	s.Tags = tags
	return true
}

func appendNew(tags, add []string) []string {
	for _, t := range add {
		if t != "" && !slices.Contains(tags, t) {
			tags = append(tags, t)
		}
	}
	return tags
}
