package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"time"

	"github.com/coffer-backup/coffer/internal/atomicfile"
	"github.com/coffer-backup/coffer/internal/regfile"
)

// StateFile keeps, in the identity directory, when the agent last started
// each repository's scheduled jobs, so that after a restart a missed run
// is made up for at once and a run that happened is not repeated.
const StateFile = "agent-state.json"

// lastStarts maps repository name, then job kind, to the last scheduled
// start.
type lastStarts map[string]map[string]time.Time

func loadState(dir string) (lastStarts, error) {
	b, err := regfile.ReadFile(filepath.Join(dir, StateFile), 16<<20)
	if errors.Is(err, fs.ErrNotExist) {
		return lastStarts{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("agent state: %w", err)
	}
	var s lastStarts
	if err := json.Unmarshal(b, &s); err != nil || s == nil {
		// Losing it only costs a catch-up run's timing: start afresh.
		return lastStarts{}, nil
	}
	return s, nil
}

func (s lastStarts) get(repo, kind string) time.Time { return s[repo][kind] }

func (s lastStarts) set(repo, kind string, t time.Time) {
	if s[repo] == nil {
		s[repo] = map[string]time.Time{}
	}
	s[repo][kind] = t
}

func (s lastStarts) save(dir string) error {
	b, err := json.Marshal(s)
	if err != nil {
		return err
	}
	return atomicfile.Write(filepath.Join(dir, StateFile), b, 0o600)
}
