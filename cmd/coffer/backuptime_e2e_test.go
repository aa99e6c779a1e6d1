package main

import (
	"encoding/json"
	"path/filepath"
	"testing"
	"time"
)

// backup --time records the claimed time in the snapshot; a bad time is a
// usage error that writes nothing.
func TestBackupTime(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.init()
	src := filepath.Join(e.dir, "src")
	writeFile(t, filepath.Join(src, "a"), []byte("a"))
	if _, se, code := e.run("backup", "--repo", e.repo, "--time", "yesterday", src); code != 2 {
		t.Fatalf("bad --time: exit %d, want 2\n%s", code, se)
	}
	e.must("backup", "--repo", e.repo, "--time", "2001-02-03T04:05:06Z", src)
	var snaps []struct {
		Time time.Time `json:"time"`
	}
	if err := json.Unmarshal([]byte(e.must("snapshots", "--repo", e.repo, "--json")), &snaps); err != nil {
		t.Fatal(err)
	}
	if len(snaps) != 1 || !snaps[0].Time.Equal(time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)) {
		t.Fatalf("snapshots %+v, want one dated 2001-02-03T04:05:06Z", snaps)
	}
}
