package main

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRewriteOldTermsCLI: after `key rotate`, `prune --rewrite-old-terms`
// leaves every object sealed with the new term, snapshots included (under
// new IDs). The client that saw the old IDs reports no rollback, check
// passes, the child's parent follows its replacement, and restore works.
func TestRewriteOldTermsCLI(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.init()
	src := filepath.Join(e.dir, "src")
	writeFile(t, filepath.Join(src, "keep"), []byte("kept in all snapshots"))
	var ids []string
	for i := 0; i < 3; i++ {
		writeFile(t, filepath.Join(src, "v"), pruneRandom(uint64(40+i), 200<<10))
		var b backupSummaryJSON
		e.mustJSON(&b, "backup", "--repo", e.repo, "--json", src)
		ids = append(ids, b.SnapshotID)
	}
	want := pruneRandom(42, 200<<10)
	e.must("forget", "--repo", e.repo, ids[0]) // a forget record on term 1
	e.must("snapshots", "--repo", e.repo)      // this client has seen ids[1] and ids[2]
	e.must("key", "rotate", "--repo", e.repo)

	type report struct {
		CurrentTerm        uint32            `json:"current_term"`
		RewrittenSnapshots int               `json:"rewritten_snapshots"`
		ReplacedSnapshots  map[string]string `json:"replaced_snapshots"`
		OldTermObjects     map[string]int    `json:"old_term_objects"`
	}
	var rep report
	e.mustJSON(&rep, "prune", "--repo", e.repo, "--json", "--rewrite-old-terms")
	if rep.CurrentTerm != 2 || rep.RewrittenSnapshots != 2 || len(rep.OldTermObjects) != 0 {
		t.Fatalf("prune report: %+v", rep)
	}
	newer, older := rep.ReplacedSnapshots[ids[2]], rep.ReplacedSnapshots[ids[1]]
	if newer == "" || older == "" {
		t.Fatalf("replacements: %v", rep.ReplacedSnapshots)
	}

	// Every sealed object's envelope header names term 2 (config and
	// keyring/* the KEK, term 0).
	n := 0
	err := filepath.WalkDir(e.repo, func(p string, d os.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() || strings.HasPrefix(d.Name(), ".") {
			return err
		}
		rel, _ := filepath.Rel(e.repo, p)
		kind, _, _ := strings.Cut(rel, string(filepath.Separator))
		if kind == "keys" {
			return nil
		}
		b, err := os.ReadFile(p) // #nosec G304 G122 -- the test's own repository
		if err != nil {
			return err
		}
		if len(b) < 12 || !bytes.Equal(b[:4], []byte("CFR1")) {
			t.Fatalf("%s: not an envelope", rel)
		}
		wantTerm := uint32(2)
		if kind == "config" || kind == "keyring" {
			wantTerm = 0
		}
		if got := binary.BigEndian.Uint32(b[8:12]); got != wantTerm {
			t.Fatalf("%s sealed with term %d, want %d", rel, got, wantTerm)
		}
		n++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 8 {
		t.Fatalf("only %d objects looked at", n)
	}

	// The same client lists snapshots: no rollback, and the new IDs.
	var snaps []struct {
		ID     string `json:"id"`
		Parent string `json:"parent"`
	}
	e.mustJSON(&snaps, "snapshots", "--repo", e.repo, "--json")
	got := map[string]string{}
	for _, s := range snaps {
		got[s.ID] = s.Parent
	}
	if len(got) != 2 || got[newer] != older {
		t.Fatalf("snapshots after the rewrite: %+v; want %s with parent %s", snaps, newer, older)
	}
	e.must("check", "--repo", e.repo, "--read-data")
	target := filepath.Join(e.dir, "restored")
	e.must("restore", "--repo", e.repo, newer[:8], "--target", target)
	b, err := os.ReadFile(filepath.Join(target, src, "v")) // #nosec G304 -- the test's own restore
	if err != nil || !bytes.Equal(b, want) {
		t.Fatalf("restored file differs (%v)", err)
	}
	// An old ID given to forget says what it became, and removes nothing.
	if _, se, code := e.run("forget", "--repo", e.repo, ids[1][:8]); code == 0 || !strings.Contains(se, "is now "+older[:8]) {
		t.Fatalf("forget of a replaced ID: exit %d, %s", code, se)
	}
	// A second run has nothing left to do.
	rep = report{}
	e.mustJSON(&rep, "prune", "--repo", e.repo, "--json", "--rewrite-old-terms")
	if rep.RewrittenSnapshots != 0 || len(rep.OldTermObjects) != 0 {
		t.Fatalf("second run: %+v", rep)
	}
	if out := e.must("prune", "--repo", e.repo, "--rewrite-old-terms"); !strings.Contains(out, "every object is sealed with key term 2") {
		t.Fatalf("prune output: %s", out)
	}
}
