package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The defects a new user met, each driven through the real binary.

// keySlots returns the key slots as key list --json shows them to pass.
func (e *env) keySlots(pass string) []keySlotJSON {
	e.t.Helper()
	so, se, code := e.runPass(pass, "key", "list", "--repo", e.repo, "--json")
	if code != 0 {
		e.t.Fatalf("key list: exit %d: %s", code, se)
	}
	var slots []keySlotJSON
	if err := json.Unmarshal([]byte(so), &slots); err != nil {
		e.t.Fatalf("key list --json: %v\n%s", err, so)
	}
	return slots
}

func TestKeyRemoveRefusesSlotInUseAndLastOfKind(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.init()
	second := filepath.Join(e.dir, "second.txt")
	writeFile(t, second, []byte("a second passphrase\n"))
	e.must(append([]string{"key", "add", "--repo", e.repo, "--new-password-file", second}, cheapKDF...)...)
	var cur, other string
	for _, s := range e.keySlots(testPass) {
		if s.Current {
			cur = s.ID
		} else {
			other = s.ID
		}
	}
	if cur == "" || other == "" {
		t.Fatalf("want the current slot and another: %q %q", cur, other)
	}

	// The slot in use: refused, and the passphrase still opens the repository.
	_, se, code := e.run("key", "remove", "--repo", e.repo, cur[:8])
	if code == 0 || !strings.Contains(se, "refusing to remove key currently used") {
		t.Fatalf("removing the slot in use: exit %d: %s", code, se)
	}
	if len(e.keySlots(testPass)) != 2 {
		t.Fatal("the slot in use was removed")
	}

	// With a recovery key as the only other way in, the last passphrase
	// slot goes only with --force.
	rk := filepath.Join(e.dir, "rk.txt")
	e.must("key", "add", "--repo", e.repo, "--recovery-key-file", rk)
	e.must("key", "remove", "--repo", e.repo, other[:8])
	key, err := os.ReadFile(rk)
	if err != nil {
		t.Fatal(err)
	}
	recovery := strings.TrimSpace(string(key))
	_, se, code = e.runPass(recovery, "key", "remove", "--repo", e.repo, cur[:8])
	if code == 0 || !strings.Contains(se, "last passphrase slot") || !strings.Contains(se, "--force") {
		t.Fatalf("removing the last passphrase slot without --force: exit %d: %s", code, se)
	}
	if _, se, code := e.run("snapshots", "--repo", e.repo); code != 0 {
		t.Fatalf("passphrase no longer opens the repository: %s", se)
	}
	if _, se, code := e.runPass(recovery, "key", "remove", "--repo", e.repo, "--force", cur[:8]); code != 0 {
		t.Fatalf("--force: exit %d: %s", code, se)
	}
	if slots := e.keySlots(recovery); len(slots) != 1 || slots[0].Kind != "recovery" {
		t.Fatalf("after --force: %+v", slots)
	}
}

func TestKeyAddRecoveryRefusesExistingFile(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.init()
	rk := filepath.Join(e.dir, "rk.txt")
	writeFile(t, rk, []byte("precious\n"))
	_, se, code := e.run("key", "add", "--repo", e.repo, "--recovery-key-file", rk)
	if code == 0 || !strings.Contains(se, "already exists") {
		t.Fatalf("key add over an existing file: exit %d: %s", code, se)
	}
	if b, _ := os.ReadFile(rk); string(b) != "precious\n" {
		t.Fatalf("existing file changed: %q", b)
	}
	if n := len(e.keySlots(testPass)); n != 1 {
		t.Fatalf("a slot was added whose key nobody has: %d slots", n)
	}
}

func TestBackupMissingSourceBacksUpTheRest(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.init()
	src := filepath.Join(e.dir, "src")
	writeFile(t, filepath.Join(src, "f"), []byte("kept"))
	missing := filepath.Join(e.dir, "optional")
	_, se, code := e.run("backup", "--repo", e.repo, src, missing)
	if code != exitPartialBackup || !strings.Contains(se, missing) {
		t.Fatalf("one source missing: exit %d, want %d naming %s: %s", code, exitPartialBackup, missing, se)
	}
	dst := filepath.Join(e.dir, "dst")
	e.must("restore", "latest", "--repo", e.repo, "--target", dst)
	diffTrees(t, src, filepath.Join(dst, src))

	_, se, code = e.run("backup", "--repo", e.repo, missing)
	if code == 0 || code == exitPartialBackup || !strings.Contains(se, missing) {
		t.Fatalf("every source missing: exit %d, want an error naming %s: %s", code, missing, se)
	}
	var snaps []snapshotJSON
	if err := json.Unmarshal([]byte(e.must("snapshots", "--repo", e.repo, "--json")), &snaps); err != nil || len(snaps) != 1 {
		t.Fatalf("want only the first snapshot: %v %d", err, len(snaps))
	}
}

func TestRestoreIncludeMatchingNothingFails(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.init()
	src := filepath.Join(e.dir, "etc")
	writeFile(t, filepath.Join(src, "hosts"), []byte("127.0.0.1 localhost\n"))
	e.must("backup", "--repo", e.repo, src)
	// As in the README: a stdin backup becomes the latest snapshot.
	so, se, code := e.run("backup", "--repo", e.repo, "--stdin", "--stdin-filename", "mydb.sql")
	if code != 0 {
		t.Fatalf("stdin backup: %d %s %s", code, so, se)
	}
	dst := filepath.Join(e.dir, "dst")
	_, se, code = e.run("restore", "latest", "--repo", e.repo, "--target", dst, "--include", src)
	if code == 0 || !strings.Contains(se, `"`+src+`" matched nothing`) {
		t.Fatalf("include matching nothing: exit %d, want a failure naming the pattern: %s", code, se)
	}
	// The README's form picks the intended snapshot.
	e.must("restore", "latest", "--repo", e.repo, "--path", src, "--target", dst, "--include", src)
	diffTrees(t, src, filepath.Join(dst, src))
	// One pattern matching is not enough: the other is named.
	_, se, code = e.run("restore", "latest", "--repo", e.repo, "--path", src, "--target", dst, "--include", src, "--include", "/nowhere")
	if code == 0 || !strings.Contains(se, `"/nowhere" matched nothing`) || strings.Contains(se, `"`+src+`" matched nothing`) {
		t.Fatalf("one of two includes matching nothing: exit %d: %s", code, se)
	}
}

func TestNewUserMessages(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	missing := filepath.Join(e.dir, "nope")
	if _, se, code := e.run("snapshots", "--repo", missing); code != exitNoRepository || !strings.Contains(se, "coffer init --repo "+missing) {
		t.Errorf("missing repository: exit %d, want %d and a hint to run init: %s", code, exitNoRepository, se)
	}
	e.init()
	_, se, code := e.run(append([]string{"init", "--repo", e.repo}, cheapKDF...)...)
	if code == 0 || !strings.Contains(se, "already exists") || !strings.Contains(se, "left as it is") {
		t.Errorf("init over a repository: exit %d: %s", code, se)
	}
	if _, se, code := e.run("restore", "--repo", e.repo); code != exitUsage || !strings.Contains(se, "usage: coffer restore SNAPSHOT") {
		t.Errorf("restore without a snapshot: exit %d, want %d and a usage line naming SNAPSHOT: %s", code, exitUsage, se)
	}
	if _, se, code := e.run("list", "foo", "--repo", e.repo); code != exitUsage || !strings.Contains(se, "blobs, packs, index, snapshots, keys, locks") {
		t.Errorf("list foo: exit %d, want %d naming the valid types: %s", code, exitUsage, se)
	}
}

func TestPassphraseSourceNamedNeverShown(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.init()
	const wrong = "not-the-passphrase"
	pf := filepath.Join(e.dir, "pass")
	writeFile(t, pf, []byte(wrong+"\n"))
	if err := os.Chmod(pf, 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		args   []string
		env    []string
		pass   string
		source string
	}{
		{"env file", nil, []string{"COFFER_PASSWORD_FILE=" + pf}, "", "COFFER_PASSWORD_FILE=" + pf},
		{"flag file", []string{"--password-file", pf}, nil, "", "--password-file " + pf},
		{"command", []string{"--password-command", "echo " + wrong}, nil, "", "--password-command"},
		{"env", nil, nil, wrong, "COFFER_PASSWORD"},
	}
	for _, c := range cases {
		e.extra = c.env
		_, se, code := e.runPass(c.pass, append([]string{"snapshots", "--repo", e.repo}, c.args...)...)
		if code != exitWrongPassword || !strings.Contains(se, "read from "+c.source) || strings.Contains(se, wrong) {
			t.Errorf("%s: exit %d, want %d naming %q and not the secret: %s", c.name, code, exitWrongPassword, c.source, se)
		}
	}
	e.extra = nil

	// A passphrase file others can read: a warning, and it still works.
	good := filepath.Join(e.dir, "good")
	writeFile(t, good, []byte(testPass+"\n"))
	if err := os.Chmod(good, 0o644); err != nil {
		t.Fatal(err)
	}
	_, se, code := e.runPass("", "snapshots", "--repo", e.repo, "--password-file", good)
	if code != 0 || !strings.Contains(se, "warning: password file "+good+" can be read by others") {
		t.Errorf("mode 0644 passphrase file: exit %d, want a warning: %s", code, se)
	}
	if err := os.Chmod(good, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, se, _ := e.runPass("", "snapshots", "--repo", e.repo, "--password-file", good); strings.Contains(se, "warning") {
		t.Errorf("mode 0600 passphrase file warned: %s", se)
	}
}

func TestBackupAndRestoreCountTheSameFiles(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.init()
	src := filepath.Join(e.dir, "src")
	writeFile(t, filepath.Join(src, "a"), []byte("a"))
	writeFile(t, filepath.Join(src, "sub", "b"), []byte("bb"))
	if err := os.Link(filepath.Join(src, "a"), filepath.Join(src, "sub", "a-again")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("a", filepath.Join(src, "link")); err != nil {
		t.Fatal(err)
	}
	var bsum backupSummaryJSON
	if err := lastJSON(e.must("backup", "--repo", e.repo, "--json", src), &bsum); err != nil {
		t.Fatal(err)
	}
	var rsum restoreSummaryJSON
	if err := lastJSON(e.must("restore", "latest", "--repo", e.repo, "--json", "--target", filepath.Join(e.dir, "dst")), &rsum); err != nil {
		t.Fatal(err)
	}
	if bsum.TotalFilesProcessed != 3 || rsum.FilesRestored != bsum.TotalFilesProcessed {
		t.Fatalf("backup counted %d files, restore %d: want 3 and 3 (regular files, each hardlink name)", bsum.TotalFilesProcessed, rsum.FilesRestored)
	}
	bout := e.must("backup", "--repo", e.repo, src)
	rout := e.must("restore", "latest", "--repo", e.repo, "--target", filepath.Join(e.dir, "dst2"))
	if !strings.Contains(bout, "Processed:   3 files") || !strings.Contains(rout, ": 3 files,") {
		t.Fatalf("human counts differ:\n%s\n%s", bout, rout)
	}
}

func TestProgressOnAPipeIsPlainLinesWithTotals(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.init()
	src := filepath.Join(e.dir, "src")
	randomTree(t, src, 64, 1<<20)
	e.extra = []string{"COFFER_PROGRESS_INTERVAL=20ms"}
	_, bse, code := e.run("backup", "--repo", e.repo, "--progress", src)
	if code != 0 {
		t.Fatalf("backup: %d %s", code, bse)
	}
	_, rse, code := e.run("restore", "latest", "--repo", e.repo, "--progress", "--target", filepath.Join(e.dir, "dst"))
	if code != 0 {
		t.Fatalf("restore: %d %s", code, rse)
	}
	for name, se := range map[string]string{"backup": bse, "restore": rse} {
		if strings.ContainsAny(se, "\r\033") {
			t.Errorf("%s --progress on a pipe wrote terminal escapes: %q", name, se)
		}
		if !strings.Contains(se, " files, ") || !strings.HasSuffix(strings.Split(se, "\n")[0], "errors") {
			t.Errorf("%s --progress on a pipe: no plain progress lines: %q", name, se)
		}
	}
	// Restore shows its total: "n/total files", found by the walk.
	lines := strings.Split(strings.TrimSpace(rse), "\n")
	last := lines[len(lines)-1]
	var done, total int
	if _, err := fmt.Sscanf(last[strings.Index(last, "] ")+2:], "%d/%d files", &done, &total); err != nil || total != 64 {
		t.Errorf("restore progress shows no total of 64 files: %q (%v)", last, err)
	}
}

// TestCheckProgressOnAPipe: check reports each phase with its counts on
// stderr, and with a short COFFER_PROGRESS_INTERVAL plain periodic lines
// too, never terminal escapes.
func TestCheckProgressOnAPipe(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.init()
	src := filepath.Join(e.dir, "src")
	randomTree(t, src, 16, 256<<10)
	e.must("backup", "--repo", e.repo, src)
	e.extra = []string{"COFFER_PROGRESS_INTERVAL=1ms"}
	_, se, code := e.run("check", "--repo", e.repo, "--read-data")
	if code != 0 {
		t.Fatalf("check: %d %s", code, se)
	}
	if strings.ContainsAny(se, "\r\033") {
		t.Errorf("check progress on a pipe wrote terminal escapes: %q", se)
	}
	for _, want := range []string{"] load index: 1/1 index files\n", "] list packs: ", "] walk snapshots: 1/1 snapshots, ", "] read data: "} {
		if !strings.Contains(se, want) {
			t.Errorf("check progress has no %q:\n%s", want, se)
		}
	}
	var done, total int
	lines := strings.Split(strings.TrimSpace(se), "\n")
	last := lines[len(lines)-1]
	if i := strings.Index(last, "] read data: "); i < 0 {
		t.Errorf("last progress line is not the read phase's: %q", last)
	} else if _, err := fmt.Sscanf(last[i+len("] read data: "):], "%d/%d packs", &done, &total); err != nil || done != total || total == 0 {
		t.Errorf("read phase ends at %d/%d packs (%v): %q", done, total, err, last)
	}
	if _, se, _ := e.run("check", "--repo", e.repo, "--quiet"); strings.Contains(se, "load index") {
		t.Errorf("check --quiet printed progress: %s", se)
	}
}
