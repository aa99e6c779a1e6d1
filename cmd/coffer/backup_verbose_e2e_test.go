package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestBackupVerbose(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.init()
	src := filepath.Join(e.dir, "src")
	writeFile(t, filepath.Join(src, "same"), []byte("s"))
	writeFile(t, filepath.Join(src, "edit"), []byte("e1"))
	out := e.must("backup", "--repo", e.repo, "-v", src)
	if !strings.Contains(out, "new       "+src+"/same\n") || !strings.Contains(out, "new       "+src+"/edit\n") {
		t.Fatalf("first backup -v:\n%s", out)
	}
	writeFile(t, filepath.Join(src, "edit"), []byte("e2 longer"))
	later := time.Now().Add(time.Minute)
	if err := os.Chtimes(filepath.Join(src, "edit"), later, later); err != nil {
		t.Fatal(err)
	}
	out = e.must("backup", "--repo", e.repo, "-v", src)
	if !strings.Contains(out, "modified  "+src+"/edit\n") || strings.Contains(out, "/same") {
		t.Fatalf("second backup -v:\n%s", out)
	}
	out = e.must("backup", "--repo", e.repo, "-vv", "--json", src)
	var actions []string
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		var v verboseStatusJSON
		if err := json.Unmarshal([]byte(l), &v); err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		if v.MessageType == "verbose_status" {
			actions = append(actions, v.Action+" "+filepath.Base(v.Item))
		}
	}
	if len(actions) != 2 || !strings.Contains(strings.Join(actions, ","), "unchanged same") {
		t.Fatalf("backup -vv --json: %v\n%s", actions, out)
	}
	if out := e.must("backup", "--repo", e.repo, src); strings.Contains(out, "unchanged") || strings.Contains(out, "new  ") {
		t.Fatalf("backup without -v lists files:\n%s", out)
	}
}
