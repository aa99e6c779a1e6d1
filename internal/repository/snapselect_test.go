package repository

import (
	"errors"
	"testing"
	"time"
)

func selSnaps() []*Snapshot {
	mk := func(b byte, host string, hour int, paths ...string) *Snapshot {
		var id ID
		id[0], id[1] = b, b
		return &Snapshot{ID: id, Hostname: host, Paths: paths, Time: time.Date(2024, 1, 1, hour, 0, 0, 0, time.UTC)}
	}
	return []*Snapshot{
		mk(0x10, "a", 1, "/etc"), mk(0x20, "a", 2, "/etc"), mk(0x30, "a", 3, "/etc"),
		mk(0x40, "a", 4, "/home", "/etc"), mk(0x50, "a", 5, "/etc", "/home"),
		mk(0x60, "b", 0, "/etc"),
	}
}

func shorts(s []*Snapshot) string {
	out := ""
	for _, x := range s {
		out += x.ID.String()[:2] + " "
	}
	return out
}

func TestLatestPerGroup(t *testing.T) {
	t.Parallel()
	s := selSnaps()
	if got := shorts(LatestPerGroup(s, 1)); got != "60 30 50 " {
		t.Errorf("latest 1: %q", got)
	}
	if got := shorts(LatestPerGroup(s, 2)); got != "60 20 30 40 50 " {
		t.Errorf("latest 2: %q", got)
	}
	if got := shorts(LatestPerGroup(s, 0)); got != "" {
		t.Errorf("latest 0: %q", got)
	}
}

func TestSelectSnapshots(t *testing.T) {
	t.Parallel()
	s := selSnaps()
	got, err := SelectSnapshots(s, []string{"5050", "latest", "1010"}, SnapshotFilter{Hosts: []string{"a"}})
	if err != nil || shorts(got) != "10 50 " {
		t.Errorf("by id: %q %v", shorts(got), err)
	}
	got, err = SelectSnapshots(s, nil, SnapshotFilter{Hosts: []string{"b"}})
	if err != nil || shorts(got) != "60 " {
		t.Errorf("by filter: %q %v", shorts(got), err)
	}
	if _, err := SelectSnapshots(s, []string{"6060"}, SnapshotFilter{Hosts: []string{"a"}}); !errors.Is(err, ErrSnapshotNotFound) {
		t.Errorf("filtered-out id: %v", err)
	}
}
