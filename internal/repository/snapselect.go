package repository

import (
	"slices"
	"strings"
)

// SelectSnapshots returns the snapshots that sels name ("latest" or ID
// prefixes, resolved among those f matches), without duplicates, oldest
// first. No sels selects every snapshot f matches.
func SelectSnapshots(snaps []*Snapshot, sels []string, f SnapshotFilter) ([]*Snapshot, error) {
	var out []*Snapshot
	if len(sels) == 0 {
		for _, s := range snaps {
			if f.Match(s) {
				out = append(out, s)
			}
		}
		SortSnapshots(out)
		return out, nil
	}
	seen := map[ID]bool{}
	for _, sel := range sels {
		s, err := FindSnapshot(snaps, sel, f)
		if err != nil {
			return nil, err
		}
		if !seen[s.ID] {
			seen[s.ID] = true
			out = append(out, s)
		}
	}
	SortSnapshots(out)
	return out, nil
}

// LatestPerGroup keeps the n newest snapshots of each host and path set,
// as restic's `snapshots --latest` does, oldest first.
func LatestPerGroup(snaps []*Snapshot, n int) []*Snapshot {
	sorted := slices.Clone(snaps)
	SortSnapshots(sorted)
	count := map[string]int{}
	var keep []*Snapshot
	for i := len(sorted) - 1; i >= 0; i-- {
		s := sorted[i]
		paths := slices.Clone(s.Paths)
		slices.Sort(paths)
		key := s.Hostname + "\x00" + strings.Join(paths, "\x00")
		if count[key] < n {
			count[key]++
			keep = append(keep, s)
		}
	}
	slices.Reverse(keep)
	return keep
}
