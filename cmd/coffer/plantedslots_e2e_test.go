package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// plantSlots writes n copies of the repository's key slot under new names
// that sort first, with the Argon2id settings rewritten: they parse, run
// Argon2id with those settings, and fail to open, as a hostile storage's
// planted slots would.
func plantSlots(t *testing.T, repo string, n int, kdf string) {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(repo, "keys"))
	if err != nil || len(ents) != 1 {
		t.Fatalf("keys: %v, %v", ents, err)
	}
	b, err := os.ReadFile(filepath.Join(repo, "keys", ents[0].Name()))
	if err != nil {
		t.Fatal(err)
	}
	planted := strings.Replace(string(b), `"time":1,"memory_kib":8192`, kdf, 1)
	if planted == string(b) {
		t.Fatalf("slot not rewritten: %s", b)
	}
	for i := range n {
		writeFile(t, filepath.Join(repo, "keys", strings.Repeat(string(rune('0'+i)), 32)), []byte(planted))
	}
}

// maxRSS runs coffer and returns its exit code, output and peak resident
// memory in KiB, less that of `coffer version`: a child's peak starts from
// the parent's (the kernel keeps it across exec), so only the difference
// says what the command itself used.
func (e *env) maxRSS(args ...string) (int, string, int64) {
	e.t.Helper()
	base := exec.Command(cofferBin, "version")
	if err := base.Run(); err != nil {
		e.t.Fatal(err)
	}
	cmd := exec.Command(cofferBin, args...)
	cmd.Env = e.environ(testPass)
	out, err := cmd.CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		e.t.Fatal(err)
	}
	return code, string(out), cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss - base.ProcessState.SysUsage().(*syscall.Rusage).Maxrss
}

// TestPlantedKeySlots: key slots planted with costly Argon2id settings
// (issue 10, item 6) are tried after the cheap genuine one, so the unlock
// stays small; a slot above the memory limit is never run, and a wrong
// passphrase says it was skipped.
func TestPlantedKeySlots(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.init()
	plantSlots(t, e.repo, 3, `"time":1,"memory_kib":524288`) // 512 MiB each
	code, out, rss := e.maxRSS("snapshots", "--repo", e.repo)
	if code != 0 || rss > 256<<10 {
		t.Fatalf("unlock beside 512 MiB slots: exit %d, peak %d MiB\n%s", code, rss>>10, out)
	}

	e = newEnv(t)
	e.init()
	plantSlots(t, e.repo, 1, `"time":1,"memory_kib":3145728`) // 3 GiB
	e.extra = []string{"COFFER_PASSWORD=wrong"}
	code, out, rss = e.maxRSS("snapshots", "--repo", e.repo)
	if code != 12 || rss > 256<<10 || !strings.Contains(out, "not tried") || !strings.Contains(out, "limit") {
		t.Fatalf("wrong passphrase beside a 3 GiB slot: exit %d, peak %d MiB\n%s", code, rss>>10, out)
	}
}
