package main

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coffer-backup/coffer/internal/maintenance"
)

func pruneRandom(seed uint64, n int) []byte {
	rng := rand.New(rand.NewPCG(seed, seed+1))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

func (e *env) mustJSON(v any, args ...string) {
	e.t.Helper()
	out := e.must(args...)
	if err := lastJSON(out, v); err != nil {
		e.t.Fatalf("coffer %s: bad JSON: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// lastJSON decodes the last line of out: the summary of a streaming
// command's JSON lines (or a listing's whole document, if it is one line).
// A multi-line document is decoded whole.
func lastJSON(out string, v any) error {
	out = strings.TrimSpace(out)
	if strings.HasPrefix(out, "{\"message_type\"") {
		out = out[strings.LastIndexByte(out, '\n')+1:]
	}
	return json.Unmarshal([]byte(out), v)
}

func (e *env) packCount() int {
	e.t.Helper()
	n := 0
	err := filepath.WalkDir(filepath.Join(e.repo, "data"), func(_ string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() && !strings.HasPrefix(d.Name(), ".") {
			n++
		}
		return err
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return n
}

// TestPruneBesideStoppedBackup is the scenario prune's two phases exist
// for: a backup loads the index, deduplicates against data that only a
// forgotten snapshot used, and is paused (SIGSTOP) while forget and prune
// run. Prune must only condemn that data; the resumed backup's snapshot must
// be complete, check must pass, and a later prune must keep the data.
func TestPruneBesideStoppedBackup(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.init()
	src := filepath.Join(e.dir, "src")
	content := pruneRandom(1, 6<<20)
	writeFile(t, filepath.Join(src, "big"), content)
	var b1 backupSummaryJSON
	e.mustJSON(&b1, "backup", "--repo", e.repo, "--json", src)
	s1 := b1.SnapshotID

	// The concurrent backup reads stdin only after taking its lock and
	// loading the index; once it has consumed our data it has also looked
	// up (and deduplicated) every chunk but the last.
	bk := exec.Command(cofferBin, "backup", "--repo", e.repo, "--json", "--stdin", "--stdin-filename", "copy") // #nosec G204 -- the binary under test
	bk.Env = e.environ(testPass)
	var bkOut, bkErr bytes.Buffer
	bk.Stdout, bk.Stderr = &bkOut, &bkErr
	stdin, err := bk.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := bk.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = bk.Process.Kill() }()
	if _, err := stdin.Write(content); err != nil {
		t.Fatalf("feed backup: %v (%s)", err, bkErr.String())
	}
	if err := bk.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	packs := e.packCount()

	e.must("forget", "--repo", e.repo, s1)
	var rep maintenance.PruneReport
	e.mustJSON(&rep, "prune", "--repo", e.repo, "--json")
	if rep.CondemnedPacks == 0 || rep.DeletedPacks != 0 || rep.DeferredPacks == 0 {
		t.Fatalf("prune beside a stopped backup: %v", rep)
	}
	if locks := rep.BlockedByLocks; len(locks) == 0 || !strings.Contains(locks[0], "backup") {
		t.Fatalf("prune does not name the backup's lock: %v", rep.BlockedByLocks)
	}
	if n := e.packCount(); n != packs {
		t.Fatalf("packs deleted while the backup was stopped: %d -> %d", packs, n)
	}

	if err := bk.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	_ = stdin.Close()
	done := make(chan error, 1)
	go func() { done <- bk.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("backup: %v\n%s", err, bkErr.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("backup did not finish")
	}
	var b2 backupSummaryJSON
	if err := lastJSON(bkOut.String(), &b2); err != nil {
		t.Fatalf("backup output: %v\n%s", err, bkOut.String())
	}
	if b2.DataBlobs > 1 {
		t.Fatalf("the backup did not deduplicate against the condemned data: %v", b2)
	}
	s2 := b2.SnapshotID

	restoreAndCompare := func() {
		t.Helper()
		e.must("check", "--repo", e.repo, "--read-data")
		dst := filepath.Join(e.dir, "dst-"+time.Now().Format("150405.000000000"))
		e.must("restore", s2, "--repo", e.repo, "--target", dst)
		got, err := os.ReadFile(filepath.Join(dst, "copy"))
		if err != nil || !bytes.Equal(got, content) {
			t.Fatalf("restored copy differs (err %v, %d bytes)", err, len(got))
		}
	}
	restoreAndCompare()

	// Now nothing predates the record: the packs are used again and kept.
	e.mustJSON(&rep, "prune", "--repo", e.repo, "--json")
	if rep.RescuedPacks == 0 || rep.PendingRecords != 0 {
		t.Fatalf("second prune: %v", rep)
	}
	restoreAndCompare()
}

// TestForgetDiffStatsCLI drives forget (policy, dry run, --prune), diff and
// stats through the binary and checks their JSON.
func TestForgetDiffStatsCLI(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.init()
	src := filepath.Join(e.dir, "src")
	writeFile(t, filepath.Join(src, "keep"), []byte("kept in all snapshots"))
	var ids []string
	for i := 0; i < 3; i++ {
		writeFile(t, filepath.Join(src, "v"), pruneRandom(uint64(10+i), 300<<10))
		if i == 2 {
			writeFile(t, filepath.Join(src, "added"), []byte("new"))
		}
		var b backupSummaryJSON
		e.mustJSON(&b, "backup", "--repo", e.repo, "--json", src)
		ids = append(ids, b.SnapshotID)
	}

	// diff: v modified, "added" added.
	out := e.must("diff", "--repo", e.repo, "--json", ids[0], ids[2])
	lines := strings.Split(strings.TrimSpace(out), "\n")
	changes := map[string]string{}
	for _, l := range lines[:len(lines)-1] {
		var c map[string]string
		if err := json.Unmarshal([]byte(l), &c); err != nil {
			t.Fatalf("diff line %q: %v", l, err)
		}
		changes[c["path"]] = c["modifier"]
	}
	if changes[src+"/v"] != "M" || changes[src+"/added"] != "+" || changes[src+"/keep"] != "" {
		t.Fatalf("diff changes: %v", changes)
	}
	var dstat diffStatsJSON
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &dstat); err != nil || dstat.MessageType != "statistics" {
		t.Fatalf("diff statistics line: %v %s", err, lines[len(lines)-1])
	}

	var st statsJSON
	e.mustJSON(&st, "stats", "--repo", e.repo, "--json", "--mode", "raw-data")
	if st.RepoStats == nil || st.Snapshots != 3 || st.Files != 7 || st.StoredSize == 0 {
		t.Fatalf("stats: %v", st)
	}

	// forget --dry-run removes nothing.
	var plan []forgetGroupJSON
	e.mustJSON(&plan, "forget", "--repo", e.repo, "--json", "--keep-last", "1", "--dry-run")
	if len(plan) != 1 || len(plan[0].Remove) != 2 || len(plan[0].Keep) != 1 {
		t.Fatalf("forget plan: %v", plan)
	}
	var snaps []snapshotJSON
	e.mustJSON(&snaps, "snapshots", "--repo", e.repo, "--json")
	if len(snaps) != 3 {
		t.Fatalf("dry run removed snapshots: %d left", len(snaps))
	}
	// No policy: nothing happens.
	if out := e.must("forget", "--repo", e.repo); !strings.Contains(out, "no policy") {
		t.Fatalf("forget without policy: %q", out)
	}
	before := e.packCount()
	// Sizes take the bytesize grammar, as quotas do; a dry run prints the
	// plan and changes nothing.
	out = e.must("prune", "--repo", e.repo, "--dry-run", "--max-unused", "10GiB")
	if !strings.Contains(out, "dry run: nothing is changed") || e.packCount() != before {
		t.Fatalf("prune --dry-run --max-unused 10GiB:\n%s", out)
	}
	out = e.must("forget", "--repo", e.repo, "--keep-last", "1", "--prune", "--max-unused", "0%")
	if !strings.Contains(out, "removed 2 snapshots") || !strings.Contains(out, "deleted") {
		t.Fatalf("forget --prune output:\n%s", out)
	}
	e.mustJSON(&snaps, "snapshots", "--repo", e.repo, "--json")
	if len(snaps) != 1 || snaps[0].ID != ids[2] {
		t.Fatalf("after forget: %v", snaps)
	}
	if e.packCount() > before {
		t.Fatalf("prune grew the repository: %d -> %d packs", before, e.packCount())
	}
	e.must("check", "--repo", e.repo, "--read-data-subset", "1/2")
	dst := filepath.Join(e.dir, "dst")
	e.must("restore", "latest", "--repo", e.repo, "--target", dst)
	diffTrees(t, src, filepath.Join(dst, src))

	// check exits 1 when a pack is gone, and names the lost file.
	var victim string
	_ = filepath.WalkDir(filepath.Join(e.repo, "data"), func(p string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() && victim == "" {
			victim = p
		}
		return nil
	})
	if err := os.Remove(victim); err != nil {
		t.Fatal(err)
	}
	so, _, code := e.run("check", "--repo", e.repo)
	if code != 1 || !strings.Contains(so, "error: pack") {
		t.Fatalf("check with a missing pack: exit %d\n%s", code, so)
	}
	// prune refuses to run on a damaged repository and deletes nothing.
	n := e.packCount()
	if _, _, code := e.run("prune", "--repo", e.repo); code == 0 || e.packCount() != n {
		t.Fatalf("prune on a damaged repository: exit %d, packs %d -> %d", code, n, e.packCount())
	}
}
