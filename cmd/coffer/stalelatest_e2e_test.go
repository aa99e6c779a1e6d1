package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// snapshotFiles returns the names in the repository's snapshots directory.
func (e *env) snapshotFiles() map[string]bool {
	e.t.Helper()
	entries, err := os.ReadDir(filepath.Join(e.repo, "snapshots"))
	if err != nil {
		e.t.Fatal(err)
	}
	out := map[string]bool{}
	for _, d := range entries {
		out[d.Name()] = true
	}
	return out
}

// twoSnapshots backs up "one", then "two", lists the snapshots (so this
// client has seen both) and returns the paths of both snapshot files.
func (e *env) twoSnapshots(src string) (older, newer string) {
	e.t.Helper()
	writeFile(e.t, filepath.Join(src, "f"), []byte("one"))
	e.must("backup", "--repo", e.repo, src)
	first := e.snapshotFiles()
	writeFile(e.t, filepath.Join(src, "f"), []byte("two"))
	e.must("backup", "--repo", e.repo, src)
	e.must("snapshots", "--repo", e.repo)
	for n := range e.snapshotFiles() {
		if first[n] {
			older = filepath.Join(e.repo, "snapshots", n)
		} else {
			newer = filepath.Join(e.repo, "snapshots", n)
		}
	}
	if older == "" || newer == "" {
		e.t.Fatalf("snapshots: want two files, have %v", e.snapshotFiles())
	}
	return older, newer
}

// TestStaleLatest (issue 10, item 1): the storage empties the newest
// snapshot this client has seen, or replaces it with another snapshot's
// file. Every command that loads snapshots refuses with exit 13 instead of
// taking the older snapshot as "latest".
func TestStaleLatest(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		tamper func(t *testing.T, older, newer string)
	}{
		{"emptied", func(t *testing.T, _, newer string) { writeFile(t, newer, nil) }},
		{"replaced", func(t *testing.T, older, newer string) {
			b, err := os.ReadFile(older)
			if err != nil {
				t.Fatal(err)
			}
			writeFile(t, newer, b)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			e.init()
			src := filepath.Join(e.dir, "src")
			older, newer := e.twoSnapshots(src)
			tc.tamper(t, older, newer)
			target := filepath.Join(e.dir, "target")
			for _, args := range [][]string{
				{"restore", "latest", "--target", target},
				{"ls", "latest"},
				{"dump", "latest", filepath.Join(src, "f")},
				{"find", "f"},
				{"snapshots"},
				{"backup", src},
				{"forget", "--keep-last", "1"},
				{"check"},
			} {
				so, se, code := e.run(append(args, "--repo", e.repo)...)
				if code != 13 || !strings.Contains(se, "rolled back") || !strings.Contains(se, filepath.Base(newer)[:8]) {
					t.Errorf("%s after the newest snapshot was %s: exit %d\nstdout: %s\nstderr: %s", args[0], tc.name, code, so, se)
				}
			}
			if _, err := os.Stat(filepath.Join(target, src, "f")); err == nil {
				t.Error("restore latest restored the older snapshot")
			}
		})
	}
}

// TestForgottenUnreadableSnapshot: a snapshot this client has seen whose
// removal an authenticated forget record covers is no rollback, even if
// the storage still serves a damaged file under its name.
func TestForgottenUnreadableSnapshot(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.init()
	src := filepath.Join(e.dir, "src")
	_, newer := e.twoSnapshots(src)
	e.must("forget", "--repo", e.repo, filepath.Base(newer)[:8])
	writeFile(t, newer, []byte("garbage"))
	target := filepath.Join(e.dir, "target")
	_, se, code := e.run("restore", "latest", "--repo", e.repo, "--target", target)
	if code != 0 || !strings.Contains(se, "cannot be read") {
		t.Fatalf("restore with a forgotten snapshot's file damaged: exit %d, %s", code, se)
	}
	if b, err := os.ReadFile(filepath.Join(target, filepath.Join(src, "f"))); err != nil || string(b) != "one" {
		t.Fatalf("restored %q, %v; want the older snapshot", b, err)
	}
}
