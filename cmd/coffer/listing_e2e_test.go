package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
)

func TestSnapshotsLatest(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.init()
	a, b := filepath.Join(e.dir, "a"), filepath.Join(e.dir, "b")
	writeFile(t, filepath.Join(a, "f"), []byte("1"))
	writeFile(t, filepath.Join(b, "f"), []byte("2"))
	for range 3 {
		e.must("backup", "--repo", e.repo, a)
	}
	e.must("backup", "--repo", e.repo, b)
	e.must("backup", "--repo", e.repo, "--host", "other", a)
	var all, latest []snapshotJSON
	if err := json.Unmarshal([]byte(e.must("snapshots", "--repo", e.repo, "--json")), &all); err != nil || len(all) != 5 {
		t.Fatalf("snapshots: %d %v", len(all), err)
	}
	if err := json.Unmarshal([]byte(e.must("snapshots", "--repo", e.repo, "--json", "--latest", "2")), &latest); err != nil {
		t.Fatal(err)
	}
	// Two of the three of host+a, and the one each of host+b and other+a.
	var ids []string
	for _, s := range latest {
		ids = append(ids, s.ID)
	}
	want := []string{all[1].ID, all[2].ID, all[3].ID, all[4].ID}
	if strings.Join(ids, ",") != strings.Join(want, ",") {
		t.Fatalf("--latest 2: %v, want %v", ids, want)
	}
	out := e.must("snapshots", "--repo", e.repo, "--latest", "1", "--host", "other")
	if !strings.Contains(out, all[4].ShortID) || !strings.Contains(out, "1 snapshots") {
		t.Fatalf("--latest 1 --host other:\n%s", out)
	}
}

func TestLsRecursive(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.init()
	src := filepath.Join(e.dir, "src")
	writeFile(t, filepath.Join(src, "top"), []byte("1"))
	writeFile(t, filepath.Join(src, "sub", "deep", "f"), []byte("2"))
	e.must("backup", "--repo", e.repo, src)
	full := strings.Fields(e.must("ls", "--repo", e.repo, "latest", src))
	recursive := strings.Fields(e.must("ls", "--repo", e.repo, "--recursive", "latest", src))
	want := []string{src, src + "/sub", src + "/sub/deep", src + "/sub/deep/f", src + "/top"}
	if strings.Join(full, " ") != strings.Join(want, " ") || strings.Join(recursive, " ") != strings.Join(want, " ") {
		t.Fatalf("ls: %v\nls --recursive: %v\nwant %v", full, recursive, want)
	}
	flat := strings.Fields(e.must("ls", "--repo", e.repo, "--recursive=false", "latest", src))
	if strings.Join(flat, " ") != src+" "+src+"/sub "+src+"/top" {
		t.Fatalf("ls --recursive=false: %v", flat)
	}
}
