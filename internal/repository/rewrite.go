package repository

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/coffer-backup/coffer/internal/crypto"
	"github.com/coffer-backup/coffer/internal/storage"
)

// This file holds what `prune --rewrite-old-terms` needs to move objects
// other than packs and index files to the current key term
// (docs/format.md §2, §8): storage never overwrites a name, so every
// rewrite writes a new object and then removes the old one.

// ErrBadReplacement reports a forget record whose replacement list does
// not parse or contradicts itself.
var ErrBadReplacement = errors.New("invalid snapshot replacement record")

// ObjectHeader loads the envelope header of a stored object. The header is
// not authenticated until the object is opened; use it to decide what to
// rewrite or to report, never to trust content.
func (r *Repository) ObjectHeader(ctx context.Context, h storage.Handle) (crypto.Header, error) {
	b, err := r.st.Load(ctx, h, 0, crypto.HeaderSize)
	if err != nil {
		return crypto.Header{}, fmt.Errorf("load header of %s: %w", h, err)
	}
	hdr, err := crypto.ParseHeader(b)
	if err != nil {
		return crypto.Header{}, fmt.Errorf("header of %s: %w", h, err)
	}
	return hdr, nil
}

// recordKinds are the objects whose names carry no meaning, so a re-sealed
// copy under a new name replaces them exactly.
var recordKinds = map[storage.Kind]crypto.ObjectKind{
	storage.KindForgets:   crypto.KindForget,
	storage.KindCondemned: crypto.KindCondemned,
}

// saveRawAs seals plaintext with the current term under the given name.
func (r *Repository) saveRawAs(ctx context.Context, h storage.Handle, ok crypto.ObjectKind, plain []byte) error {
	term, key := r.keys.current()
	data, err := crypto.SealObject(ok, r.cipher, term, key, r.id, h.String(), plain)
	if err != nil {
		return err
	}
	if err := r.st.Save(ctx, h, data); err != nil {
		return fmt.Errorf("save %s: %w", h, err)
	}
	return nil
}

// ResealRecord seals a forget or condemned record again with the current
// term under a new name, carrying its plaintext over byte for byte, and then
// removes the old object. It returns the new name. A crash in between
// leaves two identical records, which readers treat as one.
func (r *Repository) ResealRecord(ctx context.Context, k storage.Kind, id ID) (ID, error) {
	ok, known := recordKinds[k]
	if !known {
		return ID{}, fmt.Errorf("reseal %s: not a record kind", k)
	}
	old := storage.Handle{Kind: k, Name: id.String()}
	plain, err := r.LoadSealed(ctx, old, ok)
	if err != nil {
		return ID{}, err
	}
	nid := NewRandomID()
	if err := r.saveRawAs(ctx, storage.Handle{Kind: k, Name: nid.String()}, ok, plain); err != nil {
		return ID{}, err
	}
	if err := r.st.Remove(ctx, old); err != nil && !errors.Is(err, storage.ErrNotFound) {
		return nid, fmt.Errorf("remove %s: %w", old, err)
	}
	return nid, nil
}

// ReplacementRecord is a forget record (docs/format.md §8) written when
// snapshots are re-sealed under new names: ReplacedBy maps each forgotten
// snapshot to the snapshot that replaces it. Readers that know only
// ForgetRecord see an ordinary forget record.
type ReplacementRecord struct {
	ForgetRecord
	ReplacedBy map[ID]ID `json:"replaced_by,omitempty"`
}

// DecodeReplacementRecord parses a forget record's plaintext, with or
// without replacements. Every replaced snapshot must be listed as
// forgotten and must not replace itself.
func DecodeReplacementRecord(b []byte) (*ReplacementRecord, error) {
	var rec ReplacementRecord
	if err := json.Unmarshal(b, &rec); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadReplacement, err)
	}
	for o, n := range rec.ReplacedBy {
		if o == n || !slices.Contains(rec.Snapshots, o) {
			return nil, fmt.Errorf("%w: %s", ErrBadReplacement, o.Short())
		}
	}
	return &rec, nil
}

// SnapshotReplacements returns, from every forget record, which snapshot
// replaced which (old ID to new ID).
func (r *Repository) SnapshotReplacements(ctx context.Context) (map[ID]ID, error) {
	listed, err := r.listSized(ctx, storage.KindForgets)
	if err != nil {
		return nil, err
	}
	out := map[ID]ID{}
	for _, l := range listed {
		id := l.ID
		plain, err := r.loadSealedSized(ctx, storage.Handle{Kind: storage.KindForgets, Name: id.String()}, crypto.KindForget, l.Size)
		if errors.Is(err, storage.ErrNotFound) {
			continue // re-sealed meanwhile; the copy is listed too
		}
		if err != nil {
			return nil, err
		}
		rec, err := DecodeReplacementRecord(plain)
		if err != nil {
			return nil, fmt.Errorf("forget record %s: %w", id.Short(), err)
		}
		for o, n := range rec.ReplacedBy {
			out[o] = n
		}
	}
	return out, nil
}

// ResolveReplacement follows replacements from id to the snapshot that
// stands for it now (id itself when it was never replaced).
func ResolveReplacement(m map[ID]ID, id ID) ID {
	for range len(m) {
		n, ok := m[id]
		if !ok {
			break
		}
		id = n
	}
	return id
}

// ReplaceSnapshots re-seals snapshots with the current term. Names cannot
// be reused, so each snapshot gets a new ID; its content stays the same
// except that a parent that was replaced too is named by its replacement.
// Order, so that every crash leaves a state rollback detection accepts and
// a rerun finishes: (1) one forget record names the old snapshots and
// their new IDs, (2) each new snapshot is written, (3) each old one is
// removed. A rerun reuses the IDs already recorded for a snapshot still
// present, and writes the new one only if it is not stored yet. It returns
// old to new IDs.
func (r *Repository) ReplaceSnapshots(ctx context.Context, host string, ids []ID) (map[ID]ID, error) {
	if len(ids) == 0 {
		return map[ID]ID{}, nil
	}
	known, err := r.SnapshotReplacements(ctx)
	if err != nil {
		return nil, err
	}
	ids = slices.Clone(ids)
	slices.SortFunc(ids, func(a, b ID) int { return bytes.Compare(a[:], b[:]) })
	ids = slices.Compact(ids)
	plan := make(map[ID]ID, len(ids))
	rec := ReplacementRecord{ForgetRecord: ForgetRecord{Time: time.Now().UTC(), Host: host}, ReplacedBy: map[ID]ID{}}
	for _, id := range ids {
		if n, ok := known[id]; ok {
			plan[id] = n
			continue
		}
		n := NewRandomID()
		plan[id] = n
		known[id] = n
		rec.Snapshots = append(rec.Snapshots, id)
		rec.ReplacedBy[id] = n
	}
	if len(rec.Snapshots) > 0 {
		if _, err := r.SaveSealed(ctx, storage.KindForgets, crypto.KindForget, rec); err != nil {
			return nil, fmt.Errorf("write replacement record: %w", err)
		}
	}
	for _, id := range ids {
		if err := r.replaceSnapshot(ctx, id, plan[id], known); err != nil {
			return nil, err
		}
	}
	return plan, nil
}

// replaceSnapshot writes old's replacement nid (unless a run that stopped
// early did) and removes old.
func (r *Repository) replaceSnapshot(ctx context.Context, old, nid ID, known map[ID]ID) error {
	oh := storage.Handle{Kind: storage.KindSnapshots, Name: old.String()}
	plain, err := r.LoadSealed(ctx, oh, crypto.KindSnapshot)
	if errors.Is(err, storage.ErrNotFound) {
		return nil // forgotten meanwhile: nothing to carry over
	}
	if err != nil {
		return err
	}
	src, err := DecodeSnapshot(old, plain)
	if err != nil {
		return err
	}
	plain, err = remapParent(plain, known)
	if err != nil {
		return fmt.Errorf("snapshot %s: %w", old.Short(), err)
	}
	if _, err := DecodeSnapshot(nid, plain); err != nil {
		return fmt.Errorf("replacement of snapshot %s: %w", old.Short(), err)
	}
	nh := storage.Handle{Kind: storage.KindSnapshots, Name: nid.String()}
	have, err := r.LoadSnapshot(ctx, nid)
	switch {
	case err == nil:
		// Written by a run that stopped before removing old. It must be the
		// same backup, or old is kept.
		if have.Tree != src.Tree || !have.Time.Equal(src.Time) {
			return fmt.Errorf("snapshot %s: its recorded replacement %s holds another backup", old.Short(), nid.Short())
		}
	case errors.Is(err, storage.ErrNotFound):
		if err := r.saveRawAs(ctx, nh, crypto.KindSnapshot, plain); err != nil {
			return err
		}
	default:
		return fmt.Errorf("snapshot %s: its recorded replacement does not load: %w", old.Short(), err)
	}
	if err := r.st.Remove(ctx, oh); err != nil && !errors.Is(err, storage.ErrNotFound) {
		return fmt.Errorf("remove snapshot %s: %w", old.Short(), err)
	}
	return nil
}

// remapParent names a replaced parent by its replacement, leaving every
// other byte of the snapshot's JSON alone when there is nothing to change.
func remapParent(plain []byte, known map[ID]ID) ([]byte, error) {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(plain, &obj); err != nil {
		return nil, err
	}
	raw, ok := obj["parent"]
	if !ok || string(raw) == "null" {
		return plain, nil
	}
	var parent ID
	if err := json.Unmarshal(raw, &parent); err != nil {
		return nil, fmt.Errorf("parent: %w", err)
	}
	np := ResolveReplacement(known, parent)
	if np == parent {
		return plain, nil
	}
	b, err := json.Marshal(np)
	if err != nil {
		return nil, err
	}
	obj["parent"] = b
	return json.Marshal(obj)
}
