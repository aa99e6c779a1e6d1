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

	checkJSONShapes(t, e)

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

// checkJSONShapes: check --json prints one "phase" line per phase, in
// order and with its final counts, then its summary (status lines, every
// second, may come between them).
func checkJSONShapes(t *testing.T, e *env) {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(e.must("check", "--repo", e.repo, "--json", "--read-data")), "\n")
	var cs struct {
		MessageType string `json:"message_type"`
		Snapshots   int    `json:"snapshots"`
		Packs       int    `json:"packs"`
	}
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &cs); err != nil || cs.MessageType != msgSummary || cs.Snapshots != 1 {
		t.Fatalf("check summary: %+v %v", cs, err)
	}
	var phases []checkStatusJSON
	for _, l := range lines[:len(lines)-1] {
		var st checkStatusJSON
		requireFields(t, "check progress", l, &st)
		switch st.MessageType {
		case msgPhase:
			phases = append(phases, st)
		case msgStatus:
		default:
			t.Fatalf("check progress of type %q: %s", st.MessageType, l)
		}
	}
	want := []string{"load_index", "list_packs", "walk_snapshots", "read_data"}
	if len(phases) != len(want) {
		t.Fatalf("check --json: %d phase lines, want %d:\n%s", len(phases), len(want), strings.Join(lines, "\n"))
	}
	for i, p := range phases {
		if p.Phase != want[i] {
			t.Errorf("phase %d is %q, want %q", i, p.Phase, want[i])
		}
	}
	last := phases[len(phases)-1]
	if last.SnapshotsDone != 1 || last.SnapshotsTotal != 1 || last.PacksListed != uint64(cs.Packs) || last.PacksReadDone != last.PacksReadTotal ||
		last.BytesReadTotal == 0 || last.BytesReadDone != last.BytesReadTotal || last.PercentDone != 1 || last.IndexFilesDone == 0 {
		t.Errorf("check's last phase line does not hold the final counts: %+v (summary %+v)", last, cs)
	}
}
