package repository

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/coffer-backup/coffer/internal/atomicfile"
	"github.com/coffer-backup/coffer/internal/keyring"
	"github.com/coffer-backup/coffer/internal/regfile"
)

// ErrRolledBack is returned when the storage no longer shows snapshots this
// client has seen and no authenticated forget record explains it.
var ErrRolledBack = errors.New("repository was rolled back")

// SeenState is the client's memory of one repository (docs/format.md §8).
type SeenState struct {
	Seen []ID `json:"seen"`
	// Term is the newest data-key term this client has seen. A keyring
	// whose newest term is older means the storage hides a rotation, and
	// new data would be sealed under an older key.
	Term uint32 `json:"term,omitempty"`
	// Damaged are packs `check --read-data` found damaged and has not
	// found intact since: backups do not deduplicate against them.
	Damaged []ID `json:"damaged,omitempty"`
	// Slot is the key slot that opened the repository last time, tried
	// first next time (docs/security.md §3). Older state files lack it.
	Slot string `json:"slot,omitempty"`
}

// maxStateRepos bounds how many state files lastSlot reads: slots name
// their repository in plaintext, and a hostile storage may plant slots
// naming many.
const maxStateRepos = 4

// lastSlot returns the ID of the slot that opened the repository last
// time, from the state of a repository the slots name, or "".
func lastSlot(stateDir string, slots []*keyring.Slot) string {
	if stateDir == "" {
		return ""
	}
	seen := map[string]bool{}
	for _, s := range slots {
		repo := string(s.RepoID)
		if seen[repo] {
			continue
		}
		if len(seen) == maxStateRepos {
			break
		}
		seen[repo] = true
		st, err := loadState(StateFile(stateDir, s.RepoID))
		if err != nil || st.Slot == "" {
			continue
		}
		for _, c := range slots {
			if c.ID == st.Slot && bytes.Equal(c.RepoID, s.RepoID) {
				return st.Slot
			}
		}
	}
	return ""
}

// rememberSlot records the slot that opened r for the next unlock. It is
// best effort: a state directory that cannot be written only costs the
// next unlock its shortcut.
func (r *Repository) rememberSlot(stateDir string) {
	if stateDir == "" {
		return
	}
	if st, err := loadState(StateFile(stateDir, r.id)); err == nil && st.Slot == r.keys.slot.ID {
		return
	}
	_ = r.updateState(stateDir, func(s *SeenState) { s.Slot = r.keys.slot.ID })
}

// StateFile returns the path of the local state for a repository ID.
func StateFile(stateDir string, repoID []byte) string {
	return filepath.Join(stateDir, "repos", hex.EncodeToString(repoID)+".json")
}

// maxStateFile bounds a state file: far beyond a real one (a snapshot ID
// per snapshot ever seen), so a planted huge file is refused unread.
const maxStateFile = 256 << 20

// loadState reads a repository's local state; a missing file is an empty
// state. Only a regular file is read, and never by an open that blocks.
func loadState(path string) (SeenState, error) {
	var s SeenState
	b, err := regfile.ReadFile(path, maxStateFile)
	if errors.Is(err, os.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return s, fmt.Errorf("read local state: %w", err)
	}
	if err := json.Unmarshal(b, &s); err != nil {
		return s, fmt.Errorf("local state %s is corrupt: %w", path, err)
	}
	return s, nil
}

// checkTerm refuses a keyring whose newest term is older than one this
// client has seen.
func (r *Repository) checkTerm(stateDir string, st SeenState) error {
	if cur, _ := r.keys.current(); st.Term > cur {
		return fmt.Errorf("%w: this client has seen data-key term %d, but the keyring's newest term is %d; the storage may be hiding a key rotation (if you restored the repository from an older copy on purpose, remove %s)",
			ErrRolledBack, st.Term, cur, StateFile(stateDir, r.id))
	}
	return nil
}

// CheckTerm runs the key-term part of the rollback check alone, for
// commands that write without listing snapshots. stateDir "" disables it.
func (r *Repository) CheckTerm(stateDir string) error {
	if stateDir == "" {
		return nil
	}
	st, err := loadState(StateFile(stateDir, r.id))
	if err != nil {
		return err
	}
	return r.checkTerm(stateDir, st)
}

// CheckRollback compares the snapshots present now with those this client
// saw before. stateDir "" disables the check.
func (r *Repository) CheckRollback(ctx context.Context, stateDir string, present []ID) error {
	return r.CheckSeen(ctx, stateDir, present, nil)
}

// CheckSeen is CheckRollback for a listing where some snapshots could not
// be loaded: present are the snapshots that loaded, unreadable those that
// are listed but fail to load or authenticate. A snapshot this client has
// seen that is now unreadable counts as gone (issue 10, item 1): the
// storage may have emptied or replaced the newest snapshot to make
// "latest" fall back to an older one. Only an authenticated forget record
// explains either. stateDir "" disables the check.
func (r *Repository) CheckSeen(ctx context.Context, stateDir string, present []ID, unreadable []SnapshotError) error {
	if stateDir == "" {
		return nil
	}
	st, err := loadState(StateFile(stateDir, r.id))
	if err != nil {
		return err
	}
	if err := r.checkTerm(stateDir, st); err != nil {
		return err
	}
	have := make(map[ID]bool, len(present))
	for _, id := range present {
		have[id] = true
	}
	var missing []ID
	for _, id := range st.Seen {
		if !have[id] {
			missing = append(missing, id)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	unexplained, err := r.unexplained(ctx, missing, have, unreadable)
	if err != nil {
		return err
	}
	if len(unexplained) > 0 {
		slices.Sort(unexplained)
		return fmt.Errorf("%w: snapshots %s were seen by this client but are gone or unreadable without a forget record; the storage may be serving an old or altered state (if you restored the repository from an older copy on purpose, remove %s)",
			ErrRolledBack, strings.Join(unexplained, ", "), StateFile(stateDir, r.id))
	}
	return nil
}

// unexplained describes the missing snapshots no forget record covers.
func (r *Repository) unexplained(ctx context.Context, missing []ID, have map[ID]bool, unreadable []SnapshotError) ([]string, error) {
	forgotten, err := r.ForgottenSnapshots(ctx)
	if err != nil {
		return nil, err
	}
	replacements, err := r.SnapshotReplacements(ctx)
	if err != nil {
		return nil, err
	}
	why := make(map[ID]error, len(unreadable))
	for _, u := range unreadable {
		why[u.ID] = u.Err
	}
	var out []string
	for _, id := range missing {
		if !forgotten[id] {
			if e, ok := why[id]; ok {
				out = append(out, fmt.Sprintf("%s (unreadable: %v)", id.Short(), e))
			} else {
				out = append(out, id.Short())
			}
			continue
		}
		// A snapshot re-sealed under a new key term is forgotten with a
		// replacement, which is written before the old one is removed:
		// the replacement (or what replaced it in turn) must be there too.
		if _, replaced := replacements[id]; replaced {
			if n := ResolveReplacement(replacements, id); !have[n] && !forgotten[n] {
				out = append(out, id.Short()+" (replaced by "+n.Short()+", which is gone)")
			}
		}
	}
	return out, nil
}

// RecordSeen stores the snapshot IDs present now as seen, and the
// keyring's newest term if it is newer than the one recorded, atomically.
func (r *Repository) RecordSeen(stateDir string, present []ID) error {
	if stateDir == "" {
		return nil
	}
	ids := slices.Clone(present)
	slices.SortFunc(ids, func(a, b ID) int { return strings.Compare(a.String(), b.String()) })
	return r.updateState(stateDir, func(s *SeenState) { s.Seen = ids })
}

// RecordTerm records the keyring's newest term, keeping the seen snapshots.
func (r *Repository) RecordTerm(stateDir string) error {
	if stateDir == "" {
		return nil
	}
	return r.updateState(stateDir, func(*SeenState) {})
}

func (r *Repository) updateState(stateDir string, change func(*SeenState)) error {
	path := StateFile(stateDir, r.id)
	st, err := loadState(path)
	if err != nil {
		return err
	}
	change(&st)
	if cur, _ := r.keys.current(); cur > st.Term {
		st.Term = cur
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("local state: %w", err)
	}
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	if err := atomicfile.Write(path, b, 0o600); err != nil {
		return fmt.Errorf("local state: %w", err)
	}
	return nil
}
