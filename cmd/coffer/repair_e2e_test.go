package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// corruptIndex overwrites every index file with garbage.
func corruptIndex(t *testing.T, e *env) {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(e.repo, "index"))
	if err != nil || len(ents) == 0 {
		t.Fatalf("index files: %v, %d", err, len(ents))
	}
	for _, d := range ents {
		writeFile(t, filepath.Join(e.repo, "index", d.Name()), []byte("garbage, not an index"))
	}
}

// TestCorruptIndexAndRepairIndex: with one index file damaged, backup and
// restore still work (its blobs count as unindexed), prune refuses rather
// than delete packs only that file named, and repair index rebuilds the
// index from the packs so everything restores again (issue 10, item 7).
func TestCorruptIndexAndRepairIndex(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.init()
	src := filepath.Join(e.dir, "src")
	randomTree(t, filepath.Join(src, "old"), 2, 256<<10)
	e.must("backup", "--repo", e.repo, src)
	corruptIndex(t, e)
	randomTree(t, filepath.Join(src, "new"), 2, 256<<10)
	_, se, code := e.run("backup", "--repo", e.repo, src)
	if code != 0 || !strings.Contains(se, "repair index") {
		t.Fatalf("backup beside a corrupt index file: exit %d\n%s", code, se)
	}
	dst := filepath.Join(e.dir, "dst")
	if _, se, code := e.run("restore", "latest", "--repo", e.repo, "--target", dst); code != 0 {
		t.Fatalf("restore beside a corrupt index file: exit %d\n%s", code, se)
	}
	diffTrees(t, src, filepath.Join(dst, src))
	packs := len(listPacks(t, e.repo))
	if _, se, code := e.run("prune", "--repo", e.repo, "--max-unused", "0"); code == 0 || !strings.Contains(se, "repair index") {
		t.Fatalf("prune beside a corrupt index file: exit %d\n%s", code, se)
	}
	if n := len(listPacks(t, e.repo)); n != packs {
		t.Fatalf("prune deleted packs: %d -> %d", packs, n)
	}
	so := e.must("repair", "index", "--repo", e.repo)
	if !strings.Contains(so, "indexed") {
		t.Fatalf("repair index said: %s", so)
	}
	e.must("check", "--repo", e.repo, "--read-data")
	first := firstSnapshotID(t, e)
	dst2 := filepath.Join(e.dir, "dst2")
	e.must("restore", first, "--repo", e.repo, "--target", dst2)
	diffTrees(t, filepath.Join(src, "old"), filepath.Join(dst2, src, "old"))
	e.must("prune", "--repo", e.repo)
	e.must("check", "--repo", e.repo, "--read-data")
}

// TestRepairSnapshots deletes the packs of one file's data: repair
// snapshots --dry-run names it and writes nothing; repair snapshots writes
// a snapshot without it that restores and checks clean; --forget drops
// the original (issue 10, item 7).
func TestRepairSnapshots(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	src, first, _ := goneSetup(t, e) // src/one in the first packs, src/two in the second
	for _, p := range first {
		if err := os.Remove(p); err != nil {
			t.Fatal(err)
		}
	}
	// The first packs also held the first snapshot's trees: the second
	// snapshot has its own, so its loss is src/one only.
	snapsBefore := e.must("snapshots", "--repo", e.repo, "--json")
	so := e.must("repair", "snapshots", "--repo", e.repo, "--dry-run")
	if !strings.Contains(so, "one") {
		t.Fatalf("dry run did not name the lost file: %s", so)
	}
	if after := e.must("snapshots", "--repo", e.repo, "--json"); after != snapsBefore {
		t.Fatal("dry run wrote snapshots")
	}
	so = e.must("repair", "snapshots", "--repo", e.repo, "--forget")
	if !strings.Contains(so, "replaced by") || !strings.Contains(so, "forgot") {
		t.Fatalf("repair snapshots said: %s", so)
	}
	out := e.must("snapshots", "--repo", e.repo, "--json")
	if strings.Count(out, `"id"`) == 0 || !strings.Contains(out, "repaired") {
		t.Fatalf("snapshots after repair: %s", out)
	}
	e.must("prune", "--repo", e.repo)
	e.must("check", "--repo", e.repo, "--read-data")
	dst := filepath.Join(e.dir, "dst")
	e.must("restore", "latest", "--repo", e.repo, "--target", dst)
	diffTrees(t, filepath.Join(src, "two"), filepath.Join(dst, src, "two"))
	_ = filepath.WalkDir(filepath.Join(dst, src, "one"), func(p string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			t.Errorf("the lost file %s was restored", p)
		}
		return nil
	})
}
