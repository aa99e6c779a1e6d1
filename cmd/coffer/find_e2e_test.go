package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestFind(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.init()
	src := filepath.Join(e.dir, "src")
	writeFile(t, filepath.Join(src, "conf", "app.conf"), []byte("a"))
	writeFile(t, filepath.Join(src, "conf", "old.conf"), []byte("bb"))
	writeFile(t, filepath.Join(src, "data", "x.bin"), []byte("ccc"))
	old := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	if err := os.Chtimes(filepath.Join(src, "conf", "old.conf"), old, old); err != nil {
		t.Fatal(err)
	}
	e.must("backup", "--repo", e.repo, src)
	writeFile(t, filepath.Join(src, "conf", "new.conf"), []byte("dddd"))
	e.must("backup", "--repo", e.repo, src)

	out := e.must("find", "--repo", e.repo, "*.conf")
	if strings.Count(out, "Found matching entries") != 2 || strings.Count(out, "/conf/app.conf") != 2 || strings.Count(out, "/conf/new.conf") != 1 {
		t.Fatalf("find *.conf:\n%s", out)
	}
	out = e.must("find", "--repo", e.repo, "--snapshot", "latest", "--newest", "2021-01-01", "--json", "*.conf")
	var res []findSnapshotJSON
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("find --json: %v\n%s", err, out)
	}
	if len(res) != 1 || res[0].Hits != 1 || res[0].Matches[0].Path != src+"/conf/old.conf" || res[0].Matches[0].Size != 2 ||
		!res[0].Matches[0].MTime.Equal(old) || res[0].Matches[0].Permissions != "-rw-r--r--" {
		t.Fatalf("find --json: %+v", res)
	}
	if out := e.must("find", "--repo", e.repo, "--json", "nothing-here"); strings.TrimSpace(out) != "[]" {
		t.Fatalf("find with no match: %q", out)
	}
	if out := e.must("find", "--repo", e.repo, "-q", "--snapshot", "latest", "-i", "SRC/DATA"); strings.TrimSpace(out) != src+"/data\n"+src+"/data/x.bin" {
		t.Fatalf("find anchored, ignoring case: %q", out)
	}
	for _, bad := range [][]string{{"find", "--repo", e.repo}, {"find", "--repo", e.repo, "--oldest", "yesterday", "x"}, {"find", "--repo", e.repo, "a/../b"}} {
		if _, se, code := e.run(bad...); code != exitUsage {
			t.Errorf("%v: exit %d, %s", bad, code, se)
		}
	}
}
