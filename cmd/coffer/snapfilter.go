package main

import (
	"slices"

	"github.com/coffer-backup/coffer/internal/repository"
	"github.com/spf13/pflag"
)

// snapshotFilterFlags are --host, --tag and --path, shared by the commands
// that select snapshots.
type snapshotFilterFlags struct {
	hosts []string
	tags  []string
	paths []string
}

func (s *snapshotFilterFlags) register(f *pflag.FlagSet) {
	f.StringArrayVarP(&s.hosts, "host", "H", nil, "only snapshots of this host (repeatable)")
	f.StringArrayVar(&s.tags, "tag", nil, "only snapshots with these tags: a,b needs both; repeat the flag for either")
	f.StringArrayVar(&s.paths, "path", nil, "only snapshots that include this path (repeatable)")
}

func (s *snapshotFilterFlags) filter() repository.SnapshotFilter {
	paths, _ := absPaths(s.paths)
	return repository.SnapshotFilter{Hosts: s.hosts, Tags: s.tags, Paths: paths}
}

func sortStrings(s []string) { slices.Sort(s) }
