package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// copyLines decodes copy --json's lines: the per-snapshot lines and the summary.
func copyLines(t *testing.T, out string) ([]copySnapshotJSON, copySummaryJSON) {
	t.Helper()
	var snaps []copySnapshotJSON
	var sum copySummaryJSON
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var mt struct {
			MessageType string `json:"message_type"`
		}
		if err := json.Unmarshal([]byte(line), &mt); err != nil {
			t.Fatalf("copy --json line %q: %v", line, err)
		}
		switch mt.MessageType {
		case msgCopied:
			var s copySnapshotJSON
			requireFields(t, "copy snapshot", line, &s)
			snaps = append(snaps, s)
		case msgSummary:
			requireFields(t, "copy summary", line, &sum)
		case msgStatus:
			requireFields(t, "copy status", line, &copyStatusJSON{})
		default:
			t.Fatalf("copy --json printed a %q line: %s", mt.MessageType, line)
		}
	}
	if sum.MessageType != msgSummary {
		t.Fatalf("copy --json printed no summary:\n%s", out)
	}
	return snaps, sum
}

// latestTree is the tree of a repository's only (or last) snapshot, and
// its original.
func latestSnapshot(t *testing.T, e *env, repo string) snapshotJSON {
	t.Helper()
	var snaps []snapshotJSON
	out := e.must("snapshots", "--repo", repo, "--json")
	if err := json.Unmarshal([]byte(out), &snaps); err != nil || len(snaps) == 0 {
		t.Fatalf("snapshots --json: %v\n%s", err, out)
	}
	return snaps[len(snaps)-1]
}

func restoreEquals(t *testing.T, e *env, repo, src, name string) {
	t.Helper()
	dst := filepath.Join(e.dir, name)
	e.must("restore", "latest", "--repo", repo, "--target", dst, "--verify")
	diffTrees(t, src, filepath.Join(dst, src))
}

// TestCopyBetweenLocalRepositories: to a repository with its own chunker,
// file contents are re-chunked; to one made with --copy-chunker-params,
// blobs are copied as they are and a second, overlapping snapshot adds
// almost nothing. Copies are idempotent, restore what was backed up and
// pass check --read-data.
func TestCopyBetweenLocalRepositories(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.extra = []string{"COFFER_FROM_PASSWORD=" + testPass}
	e.init("--chunk-size", "256KiB")
	src := filepath.Join(e.dir, "src")
	writeFile(t, filepath.Join(src, "big"), randomBytes(7, 3<<20))
	writeFile(t, filepath.Join(src, "dir", "small"), []byte("small file\n"))
	sparse := filepath.Join(src, "sparse")
	writeFile(t, sparse, randomBytes(8, 100<<10))
	if err := os.Truncate(sparse, 5<<20); err != nil {
		t.Fatal(err)
	}
	e.must("backup", "--repo", e.repo, src)
	first := latestSnapshot(t, e, e.repo)

	// Different chunker and keys: re-chunked.
	b := filepath.Join(e.dir, "b")
	e.must(append([]string{"init", "--repo", b}, cheapKDF...)...)
	snaps, sum := copyLines(t, e.must("copy", "--from-repo", e.repo, "--repo", b, "--json"))
	if !sum.Rechunked || sum.SnapshotsCopied != 1 || len(snaps) != 1 || snaps[0].Source != first.ID || snaps[0].Skipped {
		t.Fatalf("first copy to b: %+v %+v", snaps, sum)
	}
	if got := latestSnapshot(t, e, b); got.Original != first.ID || got.Tree == first.Tree || got.Hostname != first.Hostname {
		t.Errorf("b's copy: %+v; want original %s, a re-encoded tree, the same host", got, first.ID)
	}
	restoreEquals(t, e, b, src, "from-b")
	e.must("check", "--repo", b, "--read-data")
	before := dirSize(t, b)
	snaps, sum = copyLines(t, e.must("copy", "--from-repo", e.repo, "--repo", b, "--json"))
	if sum.SnapshotsCopied != 0 || sum.SnapshotsSkipped != 1 || len(snaps) != 1 || !snaps[0].Skipped {
		t.Fatalf("second copy to b copied again: %+v %+v", snaps, sum)
	}
	if after := dirSize(t, b); after != before {
		t.Errorf("a copy that copied nothing changed b from %d to %d bytes", before, after)
	}

	// Shared chunker and keys: blobs as they are, the same tree.
	c := filepath.Join(e.dir, "c")
	out := e.must(append([]string{"init", "--repo", c, "--copy-chunker-params", "--from-repo", e.repo, "--json"}, cheapKDF...)...)
	var ij initJSON
	requireFields(t, "init", out, &ij)
	var aConf, cConf struct {
		ID      string          `json:"id"`
		Version int             `json:"version"`
		Chunker json.RawMessage `json:"chunker"`
	}
	_ = json.Unmarshal([]byte(e.must("cat", "config", "--repo", e.repo)), &aConf)
	catC := e.must("cat", "config", "--repo", c)
	_ = json.Unmarshal([]byte(catC), &cConf)
	if ij.SharedKeysFrom != aConf.ID || cConf.Version != 2 || string(cConf.Chunker) != string(aConf.Chunker) || strings.Contains(catC, "shared") {
		t.Fatalf("init --copy-chunker-params: %+v; cat config: %s; want a's chunker, version 2, keys not printed", ij, catC)
	}
	_, sum = copyLines(t, e.must("copy", "--from-repo", e.repo, "--repo", c, "--json"))
	if sum.Rechunked || sum.SnapshotsCopied != 1 {
		t.Fatalf("copy to c: %+v; want no re-chunking", sum)
	}
	if got := latestSnapshot(t, e, c); got.Tree != first.Tree || got.Original != first.ID {
		t.Errorf("c's copy has tree %s, original %s; want a's tree %s and original %s", got.Tree, got.Original, first.Tree, first.ID)
	}
	// A second snapshot that shares most data: c grows by about its new bytes.
	writeFile(t, filepath.Join(src, "dir", "new"), []byte("one more file\n"))
	e.must("backup", "--repo", e.repo, src)
	before = dirSize(t, c)
	_, sum = copyLines(t, e.must("copy", "--from-repo", e.repo, "--repo", c, "--json"))
	grew := dirSize(t, c) - before
	t.Logf("second snapshot: c grew by %d bytes (%+v)", grew, sum)
	if sum.SnapshotsCopied != 1 || sum.SnapshotsSkipped != 1 || grew > 64<<10 {
		t.Errorf("copying an overlapping snapshot to c: %+v, c grew by %d bytes; want one copied, one skipped, a few KiB", sum, grew)
	}
	restoreEquals(t, e, c, src, "from-c")
	e.must("check", "--repo", c, "--read-data")

	// Copy selects like other commands, and copy back skips what came from there.
	_, sum = copyLines(t, e.must("copy", "--from-repo", c, "--repo", b, "--json", "--host", "no-such-host"))
	if sum.SnapshotsCopied != 0 || sum.SnapshotsSkipped != 0 {
		t.Errorf("--host no-such-host selected snapshots: %+v", sum)
	}
	_, sum = copyLines(t, e.must("copy", "--from-repo", c, "--repo", e.repo, "--json"))
	if sum.SnapshotsCopied != 0 || sum.SnapshotsSkipped != 2 {
		t.Errorf("copying c's copies back to a: %+v; want both skipped", sum)
	}
}

// TestCopyBadInput: a wrong source passphrase, no source, and a copy into
// itself are clear errors that change nothing.
func TestCopyBadInput(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.init()
	src := filepath.Join(e.dir, "src")
	writeFile(t, filepath.Join(src, "f"), []byte("data\n"))
	e.must("backup", "--repo", e.repo, src)
	b := filepath.Join(e.dir, "b")
	e.must(append([]string{"init", "--repo", b}, cheapKDF...)...)
	before := dirSize(t, b)

	wrong := filepath.Join(e.dir, "wrong")
	if err := os.WriteFile(wrong, []byte("not the passphrase\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, se, code := e.run("copy", "--from-repo", e.repo, "--from-password-file", wrong, "--repo", b)
	if code != exitWrongPassword || !strings.Contains(se, "source repository") || !strings.Contains(se, "--from-password-file "+wrong) {
		t.Errorf("wrong source passphrase: exit %d, %q; want %d naming the source and the file", code, se, exitWrongPassword)
	}
	_, se, code = e.run("copy", "--repo", b)
	if code != exitUsage || !strings.Contains(se, "--from-repo") {
		t.Errorf("no source: exit %d, %q", code, se)
	}
	e.extra = []string{"COFFER_FROM_PASSWORD=" + testPass}
	_, se, code = e.run("copy", "--from-repo", b, "--repo", b)
	if code != exitError || !strings.Contains(se, "same repository") {
		t.Errorf("copy into itself: exit %d, %q", code, se)
	}
	_, se, code = e.run("copy", "--from-repo", filepath.Join(e.dir, "none"), "--repo", b)
	if code != exitNoRepository || !strings.Contains(se, "source repository") {
		t.Errorf("missing source: exit %d, %q", code, se)
	}
	_, se, code = e.run("copy", "--from-repo", e.repo, "--repo", b, "ffffffff")
	if code != exitError || !strings.Contains(se, "ffffffff") {
		t.Errorf("unknown snapshot: exit %d, %q", code, se)
	}
	if after := dirSize(t, b); after != before {
		t.Errorf("failed copies changed the target from %d to %d bytes", before, after)
	}
	_, se, code = e.run("init", "--repo", filepath.Join(e.dir, "d"), "--from-repo", e.repo)
	if code != exitUsage || !strings.Contains(se, "--copy-chunker-params") {
		t.Errorf("init --from-repo alone: exit %d, %q", code, se)
	}
}

// TestCopyKilledResumes kills copy with SIGKILL while it uploads (slowed
// by --limit-upload so the kill lands midway), then runs it again: the
// second run completes, and the target checks and restores.
func TestCopyKilledResumes(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.extra = []string{"COFFER_FROM_PASSWORD=" + testPass}
	e.init()
	src := filepath.Join(e.dir, "src")
	for i := range 3 {
		writeFile(t, filepath.Join(src, "f"+string(rune('0'+i))), randomBytes(uint64(20+i), 8<<20))
	}
	e.must("backup", "--repo", e.repo, src)
	b := filepath.Join(e.dir, "b")
	e.must(append([]string{"init", "--repo", b}, cheapKDF...)...)

	cmd := exec.Command(cofferBin, "copy", "--from-repo", e.repo, "--repo", b, "--limit-upload", "8MiB/s") // #nosec G204 -- the test's own binary
	cmd.Env = e.environ(testPass)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	killed := within(20*time.Second, func() bool {
		packs, _ := filepath.Glob(filepath.Join(b, "data", "*", "*"))
		return len(packs) > 0
	})
	_ = cmd.Process.Signal(syscall.SIGKILL)
	err := cmd.Wait()
	if !killed {
		t.Fatalf("no pack appeared before the copy was killed (%v)", err)
	}
	if n := snapshotCount(t, e, b); n != 0 {
		t.Logf("the copy finished before the kill (%d snapshots): the rerun only checks idempotence", n)
	}
	e.must("copy", "--from-repo", e.repo, "--repo", b)
	if n := snapshotCount(t, e, b); n != 1 {
		t.Fatalf("after the rerun b has %d snapshots, want 1", n)
	}
	e.must("check", "--repo", b, "--read-data")
	restoreEquals(t, e, b, src, "restored")
}

// TestCopyToServer copies from a local repository into a coffer://
// repository of a real `coffer server run`, and back out of it.
func TestCopyToServer(t *testing.T) {
	t.Parallel()
	admin := newEnv(t)
	srv := startServer(t, serverInit(t, admin, "server"), "127.0.0.1:0")
	e := newEnv(t)
	e.extra = []string{"COFFER_FROM_PASSWORD=" + testPass}
	srv.enroll(admin, e, "host1")
	e.init()
	src := filepath.Join(e.dir, "src")
	writeFile(t, filepath.Join(src, "f"), randomBytes(3, 2<<20))
	writeFile(t, filepath.Join(src, "g"), []byte("text\n"))
	e.must("backup", "--repo", e.repo, src)
	remote := srv.url("copy")
	e.must(append([]string{"init", "--repo", remote, "--copy-chunker-params", "--from-repo", e.repo}, cheapKDF...)...)
	_, sum := copyLines(t, e.must("copy", "--from-repo", e.repo, "--repo", remote, "--json"))
	if sum.SnapshotsCopied != 1 || sum.Rechunked {
		t.Fatalf("copy to the server: %+v", sum)
	}
	restoreEquals(t, e, remote, src, "from-server")
	e.must("check", "--repo", remote, "--read-data")
	// And from the server into a fresh local repository, re-chunked.
	back := filepath.Join(e.dir, "back")
	e.must(append([]string{"init", "--repo", back, "--chunk-size", "512KiB"}, cheapKDF...)...)
	_, sum = copyLines(t, e.must("copy", "--from-repo", remote, "--repo", back, "--json"))
	if sum.SnapshotsCopied != 1 || !sum.Rechunked {
		t.Fatalf("copy from the server: %+v", sum)
	}
	restoreEquals(t, e, back, src, "from-back")
}
