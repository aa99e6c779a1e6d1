package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// goneSetup backs up src with one file, then with a second one added, and
// returns the packs of the first backup and of the second.
func goneSetup(t *testing.T, e *env) (src string, first, second []string) {
	t.Helper()
	e.init()
	src = filepath.Join(e.dir, "src")
	randomTree(t, filepath.Join(src, "one"), 1, 1<<20)
	e.must("backup", "--repo", e.repo, src)
	before := listPacks(t, e.repo)
	randomTree(t, filepath.Join(src, "two"), 1, 3<<20)
	e.must("backup", "--repo", e.repo, src)
	for p := range listPacks(t, e.repo) {
		if before[p] {
			first = append(first, p)
		} else {
			second = append(second, p)
		}
	}
	if len(first) == 0 || len(second) == 0 {
		t.Fatalf("packs: %d of the first backup, %d of the second", len(first), len(second))
	}
	return src, first, second
}

// backupRestores backs src up again and restores the new snapshot: it must
// hold every file, whatever happened to the packs the old ones used.
func backupRestores(t *testing.T, e *env, src string) string {
	t.Helper()
	_, se, code := e.run("backup", "--repo", e.repo, src)
	if code != 0 {
		t.Fatalf("backup: exit %d\n%s", code, se)
	}
	dst := filepath.Join(e.dir, "dst")
	if so, rse, code := e.run("restore", "latest", "--repo", e.repo, "--target", dst); code != 0 {
		t.Fatalf("the new snapshot does not restore: exit %d\n%s\n%s", code, so, rse)
	}
	diffTrees(t, src, filepath.Join(dst, src))
	return se
}

// TestBackupAfterPackDeleted deletes the packs of a first backup, then
// backs up the same files again: the new snapshot must restore (issue 10,
// item 2: a backup must not reuse blobs of packs that are gone).
func TestBackupAfterPackDeleted(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	src, first, _ := goneSetup(t, e)
	for _, p := range first {
		if err := os.Remove(p); err != nil {
			t.Fatal(err)
		}
	}
	if se := backupRestores(t, e, src); !strings.Contains(se, "missing") {
		t.Fatalf("backup did not say it stored data again:\n%s", se)
	}
}

// TestBackupAfterPacksSwapped swaps a pack of the first backup with one of
// the second (they differ in size), then backs up again.
func TestBackupAfterPacksSwapped(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	src, first, second := goneSetup(t, e)
	a, b := first[0], second[0]
	tmp := a + ".swap"
	for _, mv := range [][2]string{{a, tmp}, {b, a}, {tmp, b}} {
		if err := os.Rename(mv[0], mv[1]); err != nil {
			t.Fatal(err)
		}
	}
	backupRestores(t, e, src)
}

// TestBackupAfterCheckFoundDamage flips a byte in the first backup's
// packs (their sizes stay right): once check --read-data has found the
// damage, the next backup stores the data again instead of deduplicating
// against it, and heals the old snapshot's blobs too.
func TestBackupAfterCheckFoundDamage(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	src, first, _ := goneSetup(t, e)
	old := strings.TrimSpace(e.must("snapshots", "--repo", e.repo, "--json"))
	for _, p := range first {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		b[len(b)/2] ^= 1
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, code := e.run("check", "--repo", e.repo, "--read-data"); code != 1 {
		t.Fatalf("check of a damaged pack: exit %d", code)
	}
	if se := backupRestores(t, e, src); !strings.Contains(se, "damaged") {
		t.Fatalf("backup did not say it stored data again:\n%s", se)
	}
	// Every blob of the damaged pack that is still on disk has a good
	// copy now, so the snapshot made before the damage restores too.
	if !strings.Contains(old, `"id"`) {
		t.Fatalf("snapshots: %s", old)
	}
	dst := filepath.Join(e.dir, "dst-first")
	first1 := firstSnapshotID(t, e)
	if so, se, code := e.run("restore", first1, "--repo", e.repo, "--target", dst); code != 0 {
		t.Fatalf("healed snapshot does not restore: exit %d\n%s\n%s", code, so, se)
	}
	diffTrees(t, filepath.Join(src, "one"), filepath.Join(dst, src, "one"))
}

// firstSnapshotID returns the ID of the oldest snapshot.
func firstSnapshotID(t *testing.T, e *env) string {
	t.Helper()
	var snaps []struct {
		ID string `json:"id"`
	}
	e.mustJSON(&snaps, "snapshots", "--repo", e.repo, "--json")
	if len(snaps) == 0 {
		t.Fatal("no snapshots")
	}
	return snaps[0].ID
}

// TestBackupAfterReplayedIndex puts back the index files a prune replaced
// (one that repacked and deleted in the same run): the next backup of the
// same files must not deduplicate into the deleted packs.
func TestBackupAfterReplayedIndex(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.init()
	src := filepath.Join(e.dir, "src")
	randomTree(t, src, 4, 512<<10)
	e.must("backup", "--repo", e.repo, src)
	saved := map[string][]byte{}
	ents, err := os.ReadDir(filepath.Join(e.repo, "index"))
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range ents {
		b, err := os.ReadFile(filepath.Join(e.repo, "index", d.Name()))
		if err != nil {
			t.Fatal(err)
		}
		saved[d.Name()] = b
	}
	// Keep one file, forget the snapshot holding the others: prune
	// repacks the kept file's blobs and deletes the old pack.
	moved := filepath.Join(e.dir, "moved")
	if err := os.MkdirAll(moved, 0o700); err != nil {
		t.Fatal(err)
	}
	var gone []string
	for _, d := range []string{"da", "db", "dc"} {
		if err := os.Rename(filepath.Join(src, d), filepath.Join(moved, d)); err != nil {
			t.Fatal(err)
		}
		gone = append(gone, d)
	}
	old := firstSnapshotID(t, e)
	e.must("backup", "--repo", e.repo, src)
	e.must("forget", "--repo", e.repo, old)
	e.must("prune", "--repo", e.repo, "--max-unused", "0")
	for name, b := range saved {
		if err := os.WriteFile(filepath.Join(e.repo, "index", name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range gone {
		if err := os.Rename(filepath.Join(moved, d), filepath.Join(src, d)); err != nil {
			t.Fatal(err)
		}
	}
	backupRestores(t, e, src)
}
