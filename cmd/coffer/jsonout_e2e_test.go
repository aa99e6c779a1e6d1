package main

import (
	"encoding/json"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// requireFields decodes one JSON object strictly into a value of v's type
// and checks that every field of that type (but omitempty ones) is present.
func requireFields(t *testing.T, what, line string, v any) {
	t.Helper()
	var keys map[string]json.RawMessage
	if err := json.Unmarshal([]byte(line), &keys); err != nil {
		t.Fatalf("%s: %v\n%s", what, err, line)
	}
	dec := json.NewDecoder(strings.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("%s: not a %T: %v\n%s", what, v, err, line)
	}
	typ := reflect.TypeOf(v).Elem()
	for i := range typ.NumField() {
		tag := typ.Field(i).Tag.Get("json")
		name, opts, _ := strings.Cut(tag, ",")
		if name == "" || name == "-" || strings.Contains(opts, "omitempty") {
			continue
		}
		if _, ok := keys[name]; !ok {
			t.Errorf("%s: field %q missing\n%s", what, name, line)
		}
	}
}

// TestJSONShapes runs each command with --json and checks its output
// against the documented structs of jsonout.go.
func TestJSONShapes(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.init()
	src := filepath.Join(e.dir, "src")
	writeFile(t, filepath.Join(src, "a.txt"), []byte("hello\n"))

	requireFields(t, "version", e.must("version", "--json"), &versionJSON{})

	lines := strings.Split(strings.TrimSpace(e.must("backup", "--repo", e.repo, "--json", src)), "\n")
	var sum backupSummaryJSON
	requireFields(t, "backup summary", lines[len(lines)-1], &sum)
	if sum.MessageType != msgSummary || sum.FilesNew != 1 {
		t.Fatalf("backup summary %+v", sum)
	}
	for _, l := range lines[:len(lines)-1] {
		requireFields(t, "backup status", l, &backupStatusJSON{})
	}

	lines = strings.Split(strings.TrimSpace(e.must("restore", "--repo", e.repo, "--json", "latest", "--target", filepath.Join(e.dir, "dst"))), "\n")
	var rs restoreSummaryJSON
	requireFields(t, "restore summary", lines[len(lines)-1], &rs)
	if rs.MessageType != msgSummary || rs.SnapshotID != sum.SnapshotID || rs.FilesRestored != 1 {
		t.Fatalf("restore summary %+v", rs)
	}

	var cs struct {
		MessageType string `json:"message_type"`
		Snapshots   int    `json:"snapshots"`
	}
	if err := json.Unmarshal([]byte(e.must("check", "--repo", e.repo, "--json")), &cs); err != nil || cs.MessageType != msgSummary || cs.Snapshots != 1 {
		t.Fatalf("check: %+v %v", cs, err)
	}

	var nodes []json.RawMessage
	if err := json.Unmarshal([]byte(e.must("ls", "--repo", e.repo, "--json", "latest")), &nodes); err != nil || len(nodes) < 2 {
		t.Fatalf("ls: one document of nodes, got %d (%v)", len(nodes), err)
	}
	for _, n := range nodes {
		requireFields(t, "ls node", string(n), &lsNodeJSON{})
	}
	var snaps []json.RawMessage
	if err := json.Unmarshal([]byte(e.must("snapshots", "--repo", e.repo, "--json")), &snaps); err != nil || len(snaps) != 1 {
		t.Fatalf("snapshots: %d (%v)", len(snaps), err)
	}
	requireFields(t, "snapshot", string(snaps[0]), &snapshotJSON{})
	var packs []json.RawMessage
	if err := json.Unmarshal([]byte(e.must("list", "packs", "--repo", e.repo, "--json")), &packs); err != nil || len(packs) == 0 {
		t.Fatalf("list packs: %d (%v)", len(packs), err)
	}
	requireFields(t, "list packs", string(packs[0]), &listFileJSON{})
	var blobs []json.RawMessage
	if err := json.Unmarshal([]byte(e.must("list", "blobs", "--repo", e.repo, "--json")), &blobs); err != nil || len(blobs) < 2 {
		t.Fatalf("list blobs: %d (%v)", len(blobs), err)
	}
	requireFields(t, "list blobs", string(blobs[0]), &listBlobJSON{})
	var empty []json.RawMessage
	if err := json.Unmarshal([]byte(e.must("list", "locks", "--repo", e.repo, "--json")), &empty); err != nil || len(empty) != 0 {
		t.Fatalf("list locks: %v %v", empty, err)
	}
}
