package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
)

func TestTag(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.init()
	src := filepath.Join(e.dir, "src")
	writeFile(t, filepath.Join(src, "f"), []byte("x"))
	e.must("backup", "--repo", e.repo, "--tag", "nightly", src)
	e.must("backup", "--repo", e.repo, "--tag", "nightly", src)
	var before []snapshotJSON
	if err := json.Unmarshal([]byte(e.must("snapshots", "--repo", e.repo, "--json")), &before); err != nil || len(before) != 2 {
		t.Fatalf("snapshots: %v %v", before, err)
	}

	out := e.must("tag", "--repo", e.repo, "--json", "--add", "keep,weekly", before[0].ShortID)
	var res tagJSON
	if err := json.Unmarshal([]byte(out), &res); err != nil || res.ChangedSnapshots != 1 || res.Replaced[0].OldID != before[0].ID {
		t.Fatalf("tag --add: %+v %v\n%s", res, err, out)
	}
	var after []snapshotJSON
	if err := json.Unmarshal([]byte(e.must("snapshots", "--repo", e.repo, "--json", "--tag", "keep")), &after); err != nil ||
		len(after) != 1 || after[0].ID != res.Replaced[0].NewID || strings.Join(after[0].Tags, ",") != "nightly,keep,weekly" ||
		after[0].Tree != before[0].Tree {
		t.Fatalf("after tag --add: %+v %v", after, err)
	}
	// Every snapshot of the filter; nothing to change is no change.
	if out := e.must("tag", "--repo", e.repo, "--remove", "nightly"); !strings.Contains(out, "modified tags on 2 snapshots") {
		t.Fatalf("tag --remove: %s", out)
	}
	if out := e.must("tag", "--repo", e.repo, "--remove", "nightly"); !strings.Contains(out, "modified tags on 0 snapshots") {
		t.Fatalf("tag --remove again: %s", out)
	}
	e.must("tag", "--repo", e.repo, "--set", "", "latest")
	after = nil
	if err := json.Unmarshal([]byte(e.must("snapshots", "--repo", e.repo, "--json")), &after); err != nil || len(after) != 2 ||
		len(after[1].Tags) != 0 || strings.Join(after[0].Tags, ",") != "keep,weekly" {
		t.Fatalf("after tag --set: %+v %v", after, err)
	}
	// The old IDs are gone with a record: check and the rollback check agree.
	e.must("check", "--repo", e.repo)
	if _, se, code := e.run("tag", "--repo", e.repo, "--add", "x", before[0].ShortID); code == 0 || !strings.Contains(se, "no matching snapshot") {
		t.Errorf("tag of a replaced ID: exit %d %s", code, se)
	}
}

func TestTagUsage(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for _, bad := range [][]string{{"tag", "--repo", e.repo, "latest"}, {"tag", "--repo", e.repo, "--set", "a", "--add", "b"}} {
		if _, se, code := e.run(bad...); code != exitUsage {
			t.Errorf("%v: exit %d %s", bad, code, se)
		}
	}
}
