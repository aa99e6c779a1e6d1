package policy

import (
	"strings"
	"testing"

	"github.com/coffer-backup/coffer/internal/pki"
	"github.com/coffer-backup/coffer/internal/wire"
)

// The name rules are copies (the policy package imports no server
// package); these tests keep them equal to the originals.
var nameSeeds = []string{"", "a", "web-1.example", "A", "-a", ".a", "_a", "a..b", "a.b", "a_b-c", "a/b", "a b", "é",
	strings.Repeat("a", 63), strings.Repeat("a", 64), strings.Repeat("a", 65), "0", "a\x00", "a."}

func FuzzNameRules(f *testing.F) {
	for _, s := range nameSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		checkNameRules(t, name)
	})
}

func TestNameRules(t *testing.T) {
	t.Parallel()
	for _, s := range nameSeeds {
		checkNameRules(t, s)
	}
}

func checkNameRules(t *testing.T, name string) {
	t.Helper()
	if ours, theirs := validateClientName(name) == nil, pki.ValidateClientName(name) == nil; ours != theirs {
		t.Errorf("client name %q: accepted here %v, by internal/pki %v", name, ours, theirs)
	}
	if ours, theirs := validateClientName(name) == nil, wire.ValidateClientName(name) == nil; ours != theirs {
		t.Errorf("client name %q: accepted here %v, by internal/wire %v", name, ours, theirs)
	}
	if ours, theirs := validateRepoName(name) == nil, wire.ValidateRepo(name) == nil; ours != theirs {
		t.Errorf("repository name %q: accepted here %v, by internal/wire %v", name, ours, theirs)
	}
}
