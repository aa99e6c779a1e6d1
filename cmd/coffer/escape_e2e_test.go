package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
)

// TestNamesEscapedOnTerminal: file names from a snapshot reach text output
// escaped as `ls -b` does, so an escape sequence or a newline in a name
// cannot drive the terminal or fake a line; JSON keeps them exact.
func TestNamesEscapedOnTerminal(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.init()
	src := filepath.Join(e.dir, "src")
	evil := "evil\x1b]0;owned\a\x1b[2J"
	fake := "fake\n/etc/shadow"
	writeFile(t, filepath.Join(src, evil), []byte("1"))
	writeFile(t, filepath.Join(src, "plain name"), []byte("2"))
	e.must("backup", "--repo", e.repo, src)
	writeFile(t, filepath.Join(src, fake), []byte("3"))
	e.must("backup", "--repo", e.repo, src)
	var snaps []snapshotJSON
	if err := json.Unmarshal([]byte(e.must("snapshots", "--repo", e.repo, "--json")), &snaps); err != nil || len(snaps) != 2 {
		t.Fatalf("snapshots: %v %v", snaps, err)
	}

	wantEvil := src + `/evil\033]0;owned\a\033[2J`
	wantFake := src + `/fake\n/etc/shadow`
	outputs := map[string]string{
		"ls":    e.must("ls", "--repo", e.repo, "latest"),
		"ls -l": e.must("ls", "--repo", e.repo, "-l", "latest"),
		"find":  e.must("find", "--repo", e.repo, "*a*"),
		"diff":  e.must("diff", "--repo", e.repo, snaps[0].ID, snaps[1].ID),
	}
	for cmd, out := range outputs {
		if strings.ContainsAny(out, "\x1b\a") {
			t.Errorf("%s printed a raw escape sequence:\n%q", cmd, out)
		}
		for _, line := range strings.Split(out, "\n") {
			if strings.HasPrefix(strings.TrimLeft(line, "+- "), "/etc/shadow") {
				t.Errorf("%s printed a fake line %q", cmd, line)
			}
		}
		if cmd != "diff" && !strings.Contains(out, wantEvil) {
			t.Errorf("%s does not show %q:\n%s", cmd, wantEvil, out)
		}
		if !strings.Contains(out, wantFake) {
			t.Errorf("%s does not show %q:\n%s", cmd, wantFake, out)
		}
		if cmd != "diff" && !strings.Contains(out, src+"/plain name") {
			t.Errorf("%s changed a printable name:\n%s", cmd, out)
		}
	}
	var nodes []lsNodeJSON
	if err := json.Unmarshal([]byte(e.must("ls", "--repo", e.repo, "--json", "latest")), &nodes); err != nil {
		t.Fatal(err)
	}
	found := 0
	for _, n := range nodes {
		if n.Path == src+"/"+evil || n.Path == src+"/"+fake {
			found++
		}
	}
	if found != 2 {
		t.Errorf("ls --json lost the exact names: %+v", nodes)
	}
}
