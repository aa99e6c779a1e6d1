package repository

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// ErrSnapshotNotFound is returned when a selector matches no snapshot.
var ErrSnapshotNotFound = errors.New("no matching snapshot")

// Snapshot is one backup: a root tree and what describes it.
type Snapshot struct {
	ID             ID               `json:"-"`
	Time           time.Time        `json:"time"`
	Tree           ID               `json:"tree"`
	Paths          []string         `json:"paths"`
	Hostname       string           `json:"hostname"`
	Username       string           `json:"username,omitempty"`
	UID            uint32           `json:"uid"`
	GID            uint32           `json:"gid"`
	Tags           []string         `json:"tags,omitempty"`
	Parent         *ID              `json:"parent,omitempty"`
	Excludes       []string         `json:"excludes,omitempty"`
	ProgramVersion string           `json:"program_version,omitempty"`
	Summary        *SnapshotSummary `json:"summary,omitempty"`
	// Original is the ID of the snapshot this one was copied from by
	// `coffer copy`, in the repository it was first written to (a copy of
	// a copy names the first); nil for a snapshot written by a backup.
	Original *ID `json:"original,omitempty"`
}

// SnapshotSummary records what a backup did.
type SnapshotSummary struct {
	BackupStart         time.Time `json:"backup_start"`
	BackupEnd           time.Time `json:"backup_end"`
	FilesNew            uint64    `json:"files_new"`
	FilesChanged        uint64    `json:"files_changed"`
	FilesUnmodified     uint64    `json:"files_unmodified"`
	DirsNew             uint64    `json:"dirs_new"`
	DirsChanged         uint64    `json:"dirs_changed"`
	DirsUnmodified      uint64    `json:"dirs_unmodified"`
	DataBlobs           uint64    `json:"data_blobs"`
	TreeBlobs           uint64    `json:"tree_blobs"`
	DataAdded           uint64    `json:"data_added"`
	DataAddedPacked     uint64    `json:"data_added_packed"`
	TotalFilesProcessed uint64    `json:"total_files_processed"`
	TotalBytesProcessed uint64    `json:"total_bytes_processed"`
	Errors              uint64    `json:"errors"`
}

const maxSnapshotSize = 16 << 20

// DecodeSnapshot parses a snapshot's plaintext strictly.
func DecodeSnapshot(id ID, b []byte) (*Snapshot, error) {
	if len(b) > maxSnapshotSize {
		return nil, fmt.Errorf("snapshot %s: too large", id.Short())
	}
	var s Snapshot
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return nil, fmt.Errorf("snapshot %s: %w", id.Short(), err)
	}
	if s.Tree.IsNull() {
		return nil, fmt.Errorf("snapshot %s: no tree", id.Short())
	}
	s.ID = id
	return &s, nil
}

// HasTags reports whether s matches a tag selection as restic reads it:
// each entry is a comma-separated list whose tags must all be present, and
// the snapshot matches if any entry does. No entries match everything.
func (s *Snapshot) HasTags(want []string) bool {
	if len(want) == 0 {
		return true
	}
	for _, w := range want {
		all := true
		for _, t := range strings.Split(w, ",") {
			if t != "" && !slices.Contains(s.Tags, t) {
				all = false
				break
			}
		}
		if all {
			return true
		}
	}
	return false
}

// HasPaths reports whether s backed up every path in want.
func (s *Snapshot) HasPaths(want []string) bool {
	for _, p := range want {
		if !slices.Contains(s.Paths, p) {
			return false
		}
	}
	return true
}

// SnapshotFilter selects snapshots by host, tag and path, as restic does.
type SnapshotFilter struct {
	Hosts []string
	Tags  []string
	Paths []string
}

// Match reports whether s passes the filter.
func (f SnapshotFilter) Match(s *Snapshot) bool {
	if len(f.Hosts) > 0 && !slices.Contains(f.Hosts, s.Hostname) {
		return false
	}
	return s.HasTags(f.Tags) && s.HasPaths(f.Paths)
}

// SortSnapshots orders snapshots oldest first (ties by ID).
func SortSnapshots(s []*Snapshot) {
	slices.SortFunc(s, func(a, b *Snapshot) int {
		if c := a.Time.Compare(b.Time); c != 0 {
			return c
		}
		return strings.Compare(a.ID.String(), b.ID.String())
	})
}

// FindSnapshot resolves "latest" or an ID prefix among snaps (filtered).
func FindSnapshot(snaps []*Snapshot, sel string, f SnapshotFilter) (*Snapshot, error) {
	var cands []*Snapshot
	for _, s := range snaps {
		if f.Match(s) {
			cands = append(cands, s)
		}
	}
	if sel == "latest" {
		if len(cands) == 0 {
			return nil, fmt.Errorf("%w: latest", ErrSnapshotNotFound)
		}
		SortSnapshots(cands)
		return cands[len(cands)-1], nil
	}
	if len(sel) < 4 {
		return nil, fmt.Errorf("snapshot selector %q: give at least 4 hex characters or \"latest\"", sel)
	}
	var found *Snapshot
	for _, s := range cands {
		if strings.HasPrefix(s.ID.String(), sel) {
			if found != nil {
				return nil, fmt.Errorf("snapshot prefix %q is ambiguous", sel)
			}
			found = s
		}
	}
	if found == nil {
		return nil, fmt.Errorf("%w: %s", ErrSnapshotNotFound, sel)
	}
	return found, nil
}
