package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/coffer-backup/coffer/internal/serverdb/pgtest"
)

// cofferBin is the real binary, built once for the end-to-end tests.
var cofferBin string

// e2eParallel is how many end-to-end tests run at once unless -parallel
// says otherwise: more than the cores, as much of their time is spent
// waiting on a server's tick, a timeout or a subprocess, not computing.
func e2eParallel() int { return max(4, 2*runtime.GOMAXPROCS(0)) }

func TestMain(m *testing.M) {
	flag.Parse()
	explicit := false
	flag.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "test.parallel" })
	if !explicit {
		if err := flag.Set("test.parallel", fmt.Sprint(e2eParallel())); err != nil {
			panic(err)
		}
	}
	dir, err := os.MkdirTemp("", "coffer-e2e-")
	if err != nil {
		panic(err)
	}
	cofferBin = filepath.Join(dir, "coffer")
	// Built as coffer ships, static (CGO_ENABLED=0): also what the suite's
	// static build step has just compiled, so this one is mostly cached.
	build := exec.Command("go", "build", "-o", cofferBin, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	out, err := build.CombinedOutput()
	if err != nil {
		panic("build coffer: " + err.Error() + "\n" + string(out))
	}
	code := m.Run()
	pgtest.Stop()
	os.RemoveAll(dir)
	os.Exit(code)
}

// env is a sandbox: its own HOME, state dir and repository.
type env struct {
	t     *testing.T
	dir   string
	repo  string
	extra []string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	d := t.TempDir()
	return &env{t: t, dir: d, repo: filepath.Join(d, "repo")}
}

func (e *env) environ(pass string) []string {
	envs := []string{
		"HOME=" + e.dir, "PATH=" + os.Getenv("PATH"), "COFFER_STATE_DIR=" + filepath.Join(e.dir, "state"),
		"XDG_DATA_HOME=" + filepath.Join(e.dir, "data"),
	}
	if pass != "" {
		envs = append(envs, "COFFER_PASSWORD="+pass)
	}
	return append(envs, e.extra...)
}

// run runs coffer and returns stdout, stderr and the exit code.
func (e *env) runPass(pass string, args ...string) (string, string, int) {
	e.t.Helper()
	cmd := exec.Command(cofferBin, args...)
	cmd.Env = e.environ(pass)
	var so, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &so, &se
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		e.t.Fatalf("run coffer: %v", err)
	}
	return so.String(), se.String(), code
}

const testPass = "correct horse battery staple"

func (e *env) run(args ...string) (string, string, int) {
	e.t.Helper()
	return e.runPass(testPass, args...)
}

func (e *env) must(args ...string) string {
	e.t.Helper()
	so, se, code := e.run(args...)
	if code != 0 {
		e.t.Fatalf("coffer %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, so, se)
	}
	return so
}

var cheapKDF = []string{"--kdf-time", "1", "--kdf-memory", "8192", "--kdf-threads", "1"}

func (e *env) init(extra ...string) {
	e.t.Helper()
	e.must(append(append([]string{"init", "--repo", e.repo}, cheapKDF...), extra...)...)
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestBackupRestoreRoundTrip(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.init()
	src := filepath.Join(e.dir, "src")
	writeFile(t, filepath.Join(src, "a.txt"), []byte("hello\n"))
	writeFile(t, filepath.Join(src, "sub", "big"), bytes.Repeat([]byte("0123456789abcdef"), 300000))
	writeFile(t, filepath.Join(src, "empty"), nil)
	if err := os.Symlink("a.txt", filepath.Join(src, "link")); err != nil {
		t.Fatal(err)
	}
	out := e.must("backup", "--repo", e.repo, "--json", src)
	var sum backupSummaryJSON
	if err := lastJSON(out, &sum); err != nil {
		t.Fatalf("backup --json output: %v\n%s", err, out)
	}
	if sum.MessageType != "summary" || sum.SnapshotID == "" || sum.FilesNew != 3 {
		t.Fatalf("unexpected summary %v", sum)
	}
	dst := filepath.Join(e.dir, "dst")
	e.must("restore", "latest", "--repo", e.repo, "--target", dst, "--verify")
	diffTrees(t, src, filepath.Join(dst, src))

	// A second backup of unchanged data adds nothing.
	out = e.must("backup", "--repo", e.repo, "--json", src)
	if err := lastJSON(out, &sum); err != nil {
		t.Fatal(err)
	}
	if sum.FilesUnmodified != 3 || sum.DataBlobs != 0 {
		t.Fatalf("re-backup was not incremental: %v", sum)
	}
}

// diffTrees compares two trees with diff(1), which checks content and types.
func diffTrees(t *testing.T, a, b string) {
	t.Helper()
	out, err := exec.Command("diff", "-r", "--no-dereference", a, b).CombinedOutput()
	if err != nil {
		t.Fatalf("restored tree differs: %v\n%s", err, out)
	}
}

func TestExitCodes(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	if _, _, code := e.run("snapshots", "--repo", filepath.Join(e.dir, "nope")); code != 10 {
		t.Errorf("missing repository: exit %d, want 10", code)
	}
	e.init()
	if _, se, code := e.runPass("wrong passphrase", "snapshots", "--repo", e.repo); code != 12 {
		t.Errorf("wrong passphrase: exit %d, want 12 (%s)", code, se)
	}
	if _, _, code := e.run("snapshots", "--repo", e.repo, "--no-such-flag"); code != 2 {
		t.Errorf("bad flag: exit %d, want 2", code)
	}
	if _, _, code := e.run("restore", "--repo", e.repo); code != 2 {
		t.Errorf("missing argument: exit %d, want 2", code)
	}
	if _, _, code := e.run("frobnicate"); code != 2 {
		t.Errorf("unknown command: exit %d, want 2", code)
	}
}

func TestWrongPassphraseLosesNothing(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.init()
	src := filepath.Join(e.dir, "src")
	writeFile(t, filepath.Join(src, "f"), []byte("data"))
	e.must("backup", "--repo", e.repo, src)
	for i := 0; i < 3; i++ {
		if _, _, code := e.runPass("nope", "backup", "--repo", e.repo, src); code != 12 {
			t.Fatalf("exit %d", code)
		}
	}
	out := e.must("snapshots", "--repo", e.repo, "--json")
	var snaps []snapshotJSON
	if err := json.Unmarshal([]byte(out), &snaps); err != nil || len(snaps) != 1 {
		t.Fatalf("snapshots after failed attempts: %v %s", err, out)
	}
}

func TestRollbackDetected(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.init()
	src := filepath.Join(e.dir, "src")
	writeFile(t, filepath.Join(src, "f"), []byte("one"))
	e.must("backup", "--repo", e.repo, src)
	serveOld := e.keepOldCopy()
	writeFile(t, filepath.Join(src, "f"), []byte("two"))
	e.must("backup", "--repo", e.repo, src)
	e.must("snapshots", "--repo", e.repo)
	serveOld()
	_, se, code := e.run("snapshots", "--repo", e.repo)
	if code != 13 || !strings.Contains(se, "rolled back") {
		t.Fatalf("rollback not reported: exit %d, %s", code, se)
	}
}

// TestKeyTermRollbackDetected: the storage serves a copy from before a key
// rotation (same snapshots, older keyring). A backup would seal new data
// under the older key, so every command refuses with exit 13.
func TestKeyTermRollbackDetected(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.init()
	src := filepath.Join(e.dir, "src")
	writeFile(t, filepath.Join(src, "f"), []byte("one"))
	e.must("backup", "--repo", e.repo, src)
	serveOld := e.keepOldCopy()
	e.must("key", "rotate", "--repo", e.repo)
	serveOld()
	before := listTree(t, e.repo)
	for _, args := range [][]string{{"backup", src}, {"snapshots"}, {"prune"}} {
		_, se, code := e.run(append(args, "--repo", e.repo)...)
		if code != 13 || !strings.Contains(se, "data-key term 2") {
			t.Fatalf("%s on a keyring that hides the rotation: exit %d, %s", args[0], code, se)
		}
	}
	if after := listTree(t, e.repo); !slices.Equal(before, after) {
		t.Fatalf("refused commands changed the repository:\n%v\n%v", before, after)
	}
}

// keepOldCopy copies the repository aside; the returned function puts the
// copy back in its place, as a storage serving an older state would.
func (e *env) keepOldCopy() func() {
	e.t.Helper()
	old := filepath.Join(e.dir, "old-copy")
	if out, err := exec.Command("cp", "-a", e.repo, old).CombinedOutput(); err != nil {
		e.t.Fatalf("cp: %v %s", err, out)
	}
	return func() {
		if err := os.RemoveAll(e.repo); err != nil {
			e.t.Fatal(err)
		}
		if err := os.Rename(old, e.repo); err != nil {
			e.t.Fatal(err)
		}
	}
}

func listTree(t *testing.T, root string) []string {
	t.Helper()
	var names []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		names = append(names, p)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return names
}

func TestDefaultRepositoryFirstRun(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	src := filepath.Join(e.dir, "src")
	writeFile(t, filepath.Join(src, "f"), []byte("data"))
	_, se, code := e.run("backup", src)
	if code != 0 {
		t.Fatalf("first backup into the default repository: exit %d: %s", code, se)
	}
	if !strings.Contains(se, "RECOVERY KEY") {
		t.Fatalf("recovery key not shown: %s", se)
	}
	// The recovery key opens the repository too.
	var rk string
	for _, l := range strings.Split(se, "\n") {
		if s := strings.TrimSpace(l); strings.HasPrefix(s, "CFRK") {
			rk = s
		}
	}
	if rk == "" {
		t.Fatalf("no recovery key in output: %s", se)
	}
	if _, se, code := e.runPass(rk, "snapshots"); code != 0 {
		t.Fatalf("recovery key does not open the repository: %d %s", code, se)
	}
	if _, err := os.Stat(filepath.Join(e.dir, "data", "coffer", "default", "config")); err != nil {
		t.Fatalf("default repository not where documented: %v", err)
	}
}
