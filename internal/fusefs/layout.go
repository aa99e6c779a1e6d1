// Package fusefs serves a repository's snapshots as a read-only FUSE file
// system: snapshots by time, host, tag and ID, file contents blob by blob.
package fusefs

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/coffer-backup/coffer/internal/repository"
)

// TimeFormat names snapshot directories, as restic's mount does.
const TimeFormat = "2006-01-02T15:04:05Z07:00"

// vdir is a directory of the virtual layer above the snapshots: the root,
// snapshots/, hosts/<host>/, tags/<tag>/, ids/. Its entries are sorted by
// name.
type vdir struct {
	entries []ventry
	mtime   time.Time // the newest snapshot below it
}

// ventry is one entry of a vdir: exactly one of dir, snap and link is set.
type ventry struct {
	name string
	dir  *vdir
	snap *repository.Snapshot // the root of this snapshot's tree
	link string               // a symlink's target ("latest")
}

func (d *vdir) lookup(name string) (ventry, bool) {
	i, ok := slices.BinarySearchFunc(d.entries, name, func(e ventry, n string) int { return strings.Compare(e.name, n) })
	if !ok {
		return ventry{}, false
	}
	return d.entries[i], true
}

func (d *vdir) sort() {
	slices.SortFunc(d.entries, func(a, b ventry) int { return strings.Compare(a.name, b.name) })
}

// snapshotDir lists snapshots (oldest first) by time, with "latest"
// pointing at the newest; two snapshots of the same second get "-1",
// "-2", ... appended to the later ones' names.
func snapshotDir(snaps []*repository.Snapshot, loc *time.Location) *vdir {
	d := &vdir{}
	used := map[string]bool{}
	last := ""
	for _, s := range snaps {
		base := s.Time.In(loc).Format(TimeFormat)
		name := base
		for i := 1; used[name]; i++ {
			name = fmt.Sprintf("%s-%d", base, i)
		}
		used[name] = true
		last = name
		d.entries = append(d.entries, ventry{name: name, snap: s})
		if s.Time.After(d.mtime) {
			d.mtime = s.Time
		}
	}
	if last != "" {
		d.entries = append(d.entries, ventry{name: "latest", link: last})
	}
	d.sort()
	return d
}

// groupDir has one snapshotDir per key (host or tag), for the snapshots
// key returns it for; keys that are not valid file names are left out.
func groupDir(snaps []*repository.Snapshot, loc *time.Location, keys func(*repository.Snapshot) []string) *vdir {
	groups := map[string][]*repository.Snapshot{}
	for _, s := range snaps {
		for _, k := range keys(s) {
			if repository.ValidName([]byte(k)) {
				groups[k] = append(groups[k], s)
			}
		}
	}
	d := &vdir{}
	for k, ss := range groups {
		sub := snapshotDir(ss, loc)
		d.entries = append(d.entries, ventry{name: k, dir: sub})
		if sub.mtime.After(d.mtime) {
			d.mtime = sub.mtime
		}
	}
	d.sort()
	return d
}

// layout builds the virtual directories for snaps (sorted oldest first):
// snapshots/, hosts/<host>/, tags/<tag>/ (each with "latest") and
// ids/<short ID>/.
func layout(snaps []*repository.Snapshot, loc *time.Location) *vdir {
	snaps = slices.Clone(snaps)
	repository.SortSnapshots(snaps)
	ids := &vdir{}
	for _, s := range snaps {
		ids.entries = append(ids.entries, ventry{name: s.ID.Short(), snap: s})
		if s.Time.After(ids.mtime) {
			ids.mtime = s.Time
		}
	}
	ids.sort()
	root := &vdir{entries: []ventry{
		{name: "hosts", dir: groupDir(snaps, loc, func(s *repository.Snapshot) []string { return []string{s.Hostname} })},
		{name: "ids", dir: ids},
		{name: "snapshots", dir: snapshotDir(snaps, loc)},
		{name: "tags", dir: groupDir(snaps, loc, func(s *repository.Snapshot) []string { return s.Tags })},
	}}
	root.mtime = ids.mtime
	return root
}
