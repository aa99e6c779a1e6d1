package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestForeignRepositoryRefused points coffer at a directory that holds some
// other tool's "config": a clear error and exit 10, nothing written.
func TestForeignRepositoryRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	if err := os.MkdirAll(filepath.Join(e.repo, "keys"), 0o700); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(e.repo, "config"), []byte(`{"version":2,"id":"restic-like"}`))
	_, se, code := e.run("snapshots", "--repo", e.repo)
	if code != 10 || !strings.Contains(se, "no coffer repository") {
		t.Fatalf("foreign repository: exit %d, %s", code, se)
	}
	if b, _ := os.ReadFile(filepath.Join(e.repo, "config")); !bytes.Contains(b, []byte("restic-like")) {
		t.Fatal("foreign config was modified")
	}
}

// TestDiskFullDuringBackup backs up into a repository on a tiny tmpfs: the
// backup fails with a clear error, the repository stays consistent, and
// after space is freed the next backup works.
func TestDiskFullDuringBackup(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	mnt := mountTmpfs(t, filepath.Join(e.dir, "small"), "6m")
	e.repo = filepath.Join(mnt, "repo")
	e.init()
	small := filepath.Join(e.dir, "small-src")
	writeFile(t, filepath.Join(small, "f"), []byte("fits easily"))
	e.must("backup", "--repo", e.repo, small)
	big := filepath.Join(e.dir, "big-src")
	randomTree(t, big, 12, 1<<20) // 12 MiB of random data: does not fit
	_, se, code := e.run("backup", "--repo", e.repo, big)
	if code == 0 || !strings.Contains(se, "no space left") {
		t.Fatalf("backup onto a full disk: exit %d, %s", code, se)
	}
	if strings.Contains(se, "panic") {
		t.Fatalf("panic: %s", se)
	}
	// What was committed before is intact.
	e.must("check", "--repo", e.repo, "--read-data")
	dst := filepath.Join(e.dir, "dst")
	e.must("restore", "latest", "--repo", e.repo, "--target", dst)
	diffTrees(t, small, filepath.Join(dst, small))
	// Free space (forget nothing; remove the oversized source) and go on.
	if err := os.RemoveAll(big); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(small, "g"), []byte("more"))
	e.must("backup", "--repo", e.repo, small)
	e.must("check", "--repo", e.repo)
}

// mountTmpfs mounts a tmpfs of the given size on dir (created), unmounted
// when the test ends; it skips the test where that is not possible.
func mountTmpfs(t *testing.T, dir, size string) string {
	t.Helper()
	if os.Getuid() != 0 {
		t.Skip("needs root to mount a tmpfs")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount tmpfs here: %v %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("umount", "-l", dir).Run() })
	return dir
}

// TestSpillDirFullDuringBackup runs a backup whose temporary directory,
// where packs wait before they are stored, fills up: the backup fails with
// a clear error, commits nothing, and the repository stays consistent and
// usable.
func TestSpillDirFullDuringBackup(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tmp := mountTmpfs(t, filepath.Join(e.dir, "tmp"), "2m")
	e.init()
	small := filepath.Join(e.dir, "small-src")
	writeFile(t, filepath.Join(small, "f"), []byte("fits easily"))
	e.must("backup", "--repo", e.repo, small)
	before := listPacks(t, e.repo)
	big := filepath.Join(e.dir, "big-src")
	randomTree(t, big, 6, 1<<20) // 6 MiB of random data: its packs do not fit in 2 MiB
	e.extra = []string{"TMPDIR=" + tmp}
	_, se, code := e.run("backup", "--repo", e.repo, big)
	e.extra = nil
	if code == 0 || !strings.Contains(se, "no space left") || !strings.Contains(se, "TMPDIR") {
		t.Fatalf("backup with a full temporary directory: exit %d, %s", code, se)
	}
	if strings.Contains(se, "panic") {
		t.Fatalf("panic: %s", se)
	}
	if after := listPacks(t, e.repo); len(after) != len(before) {
		t.Fatalf("%d packs after the failed backup, %d before", len(after), len(before))
	}
	if out := e.must("snapshots", "--repo", e.repo, "--json"); strings.Count(out, `"id"`) != 1 {
		t.Fatalf("want the one earlier snapshot, got %s", out)
	}
	e.must("check", "--repo", e.repo, "--read-data")
	e.must("backup", "--repo", e.repo, big)
	dst := filepath.Join(e.dir, "dst")
	e.must("restore", "latest", "--repo", e.repo, "--target", dst)
	diffTrees(t, big, filepath.Join(dst, big))
}

func listPacks(t *testing.T, repo string) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	err := filepath.Walk(filepath.Join(repo, "data"), func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			out[p] = true
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestCorruptPackRestoresIntactFiles flips a byte in the packs holding one
// file's data: check names the damage, restore reports that file and still
// restores the intact one.
func TestCorruptPackRestoresIntactFiles(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.init()
	src := filepath.Join(e.dir, "src")
	writeFile(t, filepath.Join(src, "intact"), []byte("this file's pack stays intact"))
	e.must("backup", "--repo", e.repo, src)
	before := listPacks(t, e.repo)
	randomTree(t, filepath.Join(src, "doomed"), 1, 3<<20)
	e.must("backup", "--repo", e.repo, src)
	var damaged int
	for p := range listPacks(t, e.repo) {
		if before[p] {
			continue
		}
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		b[len(b)/3] ^= 0x01
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		damaged++
	}
	if damaged == 0 {
		t.Fatal("second backup wrote no pack")
	}
	so, se, code := e.run("check", "--repo", e.repo, "--read-data")
	if code == 0 || !strings.Contains(so+se, "doomed") {
		t.Fatalf("check did not name the damaged file: exit %d\n%s\n%s", code, so, se)
	}
	dst := filepath.Join(e.dir, "dst")
	_, se, code = e.run("restore", "latest", "--repo", e.repo, "--target", dst)
	if code == 0 || !strings.Contains(se, "doomed") {
		t.Fatalf("restore hid the damage: exit %d %s", code, se)
	}
	if b, err := os.ReadFile(filepath.Join(dst, src, "intact")); err != nil || string(b) != "this file's pack stays intact" {
		t.Fatalf("intact file not restored: %v", err)
	}
}
