package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coffer-backup/coffer/internal/maintenance"
	"github.com/coffer-backup/coffer/internal/repair"
)

// requireArray decodes a JSON document that is an array and checks each
// element against v's type; it returns the number of elements.
func requireArray(t *testing.T, what, doc string, v func() any) int {
	t.Helper()
	var elems []json.RawMessage
	if err := json.Unmarshal([]byte(doc), &elems); err != nil {
		t.Fatalf("%s: not one JSON array: %v\n%s", what, err, doc)
	}
	for _, el := range elems {
		requireFields(t, what, string(el), v())
	}
	return len(elems)
}

// TestJSONShapesOfReports: the documents of the repository commands that
// TestJSONShapes does not run decode strictly into their documented types
// (docs/json.md), with every field present.
func TestJSONShapesOfReports(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	repo := e.repo
	requireFields(t, "init", e.must(append([]string{"init", "--repo", repo, "--json"}, cheapKDF...)...), &initJSON{})
	src := filepath.Join(e.dir, "src")
	writeFile(t, filepath.Join(src, "a.txt"), []byte("hello\n"))
	e.must("backup", "--repo", repo, src)
	writeFile(t, filepath.Join(src, "b.txt"), []byte("more\n"))
	e.must("backup", "--repo", repo, src)

	if n := requireArray(t, "key list", e.must("key", "list", "--repo", repo, "--json"), func() any { return &keySlotJSON{} }); n == 0 {
		t.Error("key list: no slots")
	}
	requireFields(t, "key rotate", e.must("key", "rotate", "--repo", repo, "--json"), &keyRotateJSON{})
	var cfg map[string]json.RawMessage
	if err := json.Unmarshal([]byte(e.must("cat", "config", "--repo", repo, "--json")), &cfg); err != nil || len(cfg) == 0 {
		t.Errorf("cat config: %v %v", cfg, err)
	}

	lines := strings.Split(strings.TrimSpace(e.must("diff", "--repo", repo, "--json", snapshotIDs(t, e)[0], snapshotIDs(t, e)[1])), "\n")
	for _, l := range lines[:len(lines)-1] {
		var c struct {
			MessageType string `json:"message_type"`
		}
		if err := json.Unmarshal([]byte(l), &c); err != nil || c.MessageType != "change" {
			t.Errorf("diff change line: %v %s", err, l)
		}
	}
	var ds struct {
		MessageType    string `json:"message_type"`
		SourceSnapshot string `json:"source_snapshot"`
	}
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &ds); err != nil || ds.MessageType != "statistics" || ds.SourceSnapshot == "" {
		t.Errorf("diff statistics line: %v %s", err, lines[len(lines)-1])
	}

	if n := requireArray(t, "find", e.must("find", "--repo", repo, "--json", "a.txt"), func() any { return &findSnapshotJSON{} }); n != 2 {
		t.Errorf("find: %d snapshots with a match, want 2", n)
	}
	var tj tagJSON
	requireFields(t, "tag", e.must("tag", "--repo", repo, "--json", "--add", "x"), &tj)
	if tj.ChangedSnapshots != 2 || len(tj.Replaced) != 2 {
		t.Errorf("tag: %+v", tj)
	}
	ids := snapshotIDs(t, e)
	requireFields(t, "forget ID --dry-run", e.must("forget", "--repo", repo, "--json", "--dry-run", ids[0]), &forgetByIDJSON{})
	if n := requireArray(t, "forget --keep-last", e.must("forget", "--repo", repo, "--json", "--keep-last", "1"), func() any { return &forgetGroupJSON{} }); n != 1 {
		t.Errorf("forget --keep-last 1: %d groups, want 1", n)
	}
	requireFields(t, "prune", e.must("prune", "--repo", repo, "--json"), &maintenance.PruneReport{})
	requireFields(t, "stats", e.must("stats", "--repo", repo, "--json"), &statsJSON{})
	requireFields(t, "repair index --dry-run", e.must("repair", "index", "--repo", repo, "--json", "--dry-run"), &repair.IndexResult{})
	requireArray(t, "repair snapshots --dry-run", e.must("repair", "snapshots", "--repo", repo, "--json", "--dry-run"), func() any { return &repair.SnapshotResult{} })

	dir := serverInit(t, e, "server")
	requireFields(t, "server token", e.must("server", "token", "--dir", dir, "--client", "alice", "--json"), &serverTokenJSON{})
	requireArray(t, "server clients", e.must("server", "clients", "--dir", dir, "--json"), func() any { return &clientJSON{} })
	requireFields(t, "server scrub", e.must("server", "scrub", "--dir", dir, "--json"), &serverScrubJSON{})
}

// snapshotIDs returns the full IDs of the repository's snapshots, oldest first.
func snapshotIDs(t *testing.T, e *env) []string {
	t.Helper()
	var snaps []snapshotJSON
	if err := json.Unmarshal([]byte(e.must("snapshots", "--repo", e.repo, "--json")), &snaps); err != nil {
		t.Fatal(err)
	}
	ids := make([]string, len(snaps))
	for i, s := range snaps {
		ids[i] = s.ID
	}
	return ids
}
