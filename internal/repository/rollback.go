package repository

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/coffer-backup/coffer/internal/exitcode"
)

// ErrRolledBack is returned when the storage no longer shows snapshots this
// client has seen and no authenticated forget record explains it.
var ErrRolledBack = errors.New("repository was rolled back")

func init() { exitcode.Register(ErrRolledBack, exitcode.RolledBack) }

// SeenState is the client's memory of one repository (docs/format.md §8).
type SeenState struct {
	Seen []ID `json:"seen"`
}

// StateFile returns the path of the local state for a repository ID.
func StateFile(stateDir string, repoID []byte) string {
	return filepath.Join(stateDir, "repos", hex.EncodeToString(repoID)+".json")
}

func loadSeen(path string) (map[ID]bool, error) {
	b, err := os.ReadFile(path) // #nosec G304 -- path is built from the state dir and a hex repository ID
	if errors.Is(err, os.ErrNotExist) {
		return map[ID]bool{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read local state: %w", err)
	}
	var s SeenState
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("local state %s is corrupt: %w", path, err)
	}
	m := make(map[ID]bool, len(s.Seen))
	for _, id := range s.Seen {
		m[id] = true
	}
	return m, nil
}

// CheckRollback compares the snapshots present now with those this client
// saw before. stateDir "" disables the check.
func (r *Repository) CheckRollback(ctx context.Context, stateDir string, present []ID) error {
	if stateDir == "" {
		return nil
	}
	seen, err := loadSeen(StateFile(stateDir, r.id))
	if err != nil {
		return err
	}
	have := make(map[ID]bool, len(present))
	for _, id := range present {
		have[id] = true
	}
	var missing []ID
	for id := range seen {
		if !have[id] {
			missing = append(missing, id)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	forgotten, err := r.ForgottenSnapshots(ctx)
	if err != nil {
		return err
	}
	replacements, err := r.SnapshotReplacements(ctx)
	if err != nil {
		return err
	}
	var unexplained []string
	for _, id := range missing {
		if !forgotten[id] {
			unexplained = append(unexplained, id.Short())
			continue
		}
		// A snapshot re-sealed under a new key term is forgotten with a
		// replacement, which is written before the old one is removed:
		// the replacement (or what replaced it in turn) must be there too.
		if _, replaced := replacements[id]; replaced {
			if n := ResolveReplacement(replacements, id); !have[n] && !forgotten[n] {
				unexplained = append(unexplained, id.Short()+" (replaced by "+n.Short()+", which is gone)")
			}
		}
	}
	if len(unexplained) > 0 {
		slices.Sort(unexplained)
		return fmt.Errorf("%w: snapshots %s were seen by this client but are gone without a forget record; the storage may be serving an old state (if you restored the repository from an older copy on purpose, remove %s)",
			ErrRolledBack, strings.Join(unexplained, ", "), StateFile(stateDir, r.id))
	}
	return nil
}

// RecordSeen stores the snapshot IDs present now as seen, atomically.
func (r *Repository) RecordSeen(stateDir string, present []ID) error {
	if stateDir == "" {
		return nil
	}
	path := StateFile(stateDir, r.id)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("local state: %w", err)
	}
	ids := slices.Clone(present)
	slices.SortFunc(ids, func(a, b ID) int { return strings.Compare(a.String(), b.String()) })
	b, err := json.Marshal(SeenState{Seen: ids})
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".state-*")
	if err != nil {
		return fmt.Errorf("local state: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		_ = tmp.Close()
		return fmt.Errorf("local state: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		_ = tmp.Close()
		return fmt.Errorf("local state: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
