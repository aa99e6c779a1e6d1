package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestGenerateManAndCompletion(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	man := filepath.Join(e.dir, "man")
	bash := filepath.Join(e.dir, "coffer.bash")
	e.must("generate", "--man", man, "--bash-completion", bash)
	for _, page := range []string{"coffer.1", "coffer-dump.1", "coffer-find.1", "coffer-tag.1", "coffer-key-add.1"} {
		b, err := os.ReadFile(filepath.Join(man, page)) // #nosec G304 -- the test's own file
		if err != nil || !strings.Contains(string(b), ".TH \"COFFER\" \"1\"") {
			t.Errorf("%s: %v", page, err)
		}
	}
	if b, err := os.ReadFile(bash); err != nil || !strings.Contains(string(b), "__start_coffer") { // #nosec G304 -- the test's own file
		t.Errorf("bash completion file: %v", err)
	}
	if out := e.must("completion", "zsh"); !strings.Contains(out, "#compdef coffer") {
		t.Errorf("completion zsh: %.80s", out)
	}
	if _, _, code := e.run("generate"); code != exitUsage {
		t.Errorf("generate without output: exit %d", code)
	}
}

// complete runs cobra's hidden completion request and returns the choices.
func (e *env) complete(pass string, args ...string) []string {
	e.t.Helper()
	out, se, code := e.runPass(pass, append([]string{"__complete"}, args...)...)
	if code != 0 {
		e.t.Fatalf("__complete %v: exit %d %s", args, code, se)
	}
	var vals []string
	for _, l := range strings.Split(out, "\n") {
		if l == "" || strings.HasPrefix(l, ":") {
			continue
		}
		vals = append(vals, strings.SplitN(l, "\t", 2)[0])
	}
	return vals
}

func TestCompletionOfFlagValuesAndSnapshots(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.init()
	src := filepath.Join(e.dir, "src")
	writeFile(t, filepath.Join(src, "f"), []byte("x"))
	e.must("backup", "--repo", e.repo, src)
	var snaps []snapshotJSON
	if err := json.Unmarshal([]byte(e.must("snapshots", "--repo", e.repo, "--json")), &snaps); err != nil || len(snaps) != 1 {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"init", "--cipher", ""}, "aes-256-gcm chacha20-poly1305"},
		{[]string{"backup", "--compression", ""}, "auto off max"},
		{[]string{"dump", "--archive", ""}, "tar zip"},
		{[]string{"restore", "--repo", e.repo, ""}, "latest " + snaps[0].ShortID},
		{[]string{"find", "--repo", e.repo, "--snapshot", ""}, "latest " + snaps[0].ShortID},
		{[]string{"tag", "--repo", e.repo, "--add", "x", snaps[0].ShortID, ""}, "latest " + snaps[0].ShortID},
	} {
		if got := strings.Join(e.complete(testPass, tc.args...), " "); got != tc.want {
			t.Errorf("%v: %q, want %q", tc.args, got, tc.want)
		}
	}
	// Without a passphrase source, completion never prompts nor reads.
	if got := strings.Join(e.complete("", "restore", "--repo", e.repo, ""), " "); got != "latest" {
		t.Errorf("without a passphrase: %q", got)
	}
}
