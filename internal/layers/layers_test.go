package layers

import (
	"encoding/json"
	"errors"
	"io"
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/coffer-backup/coffer/"

// A rule forbids the packages under any of from to depend, directly or
// through any chain of imports, on a package under any of never.
type rule struct {
	why   string
	from  []string
	never []string
	// except lists packages under from that the rule does not cover.
	except []string
	// prodOnly leaves tests out: a backend's tests may start a real server.
	prodOnly bool
}

// keyHolders are the packages that hold or use repository keys.
var keyHolders = []string{"internal/crypto", "internal/keyring", "internal/repository"}

var rules = []rule{
	{
		why:   "the server stores ciphertext only: it cannot decrypt, by construction",
		from:  []string{"internal/server", "internal/serverdb", "internal/atrest", "internal/wire", "internal/tlspolicy", "internal/tlsscan", "internal/pki", "internal/auditlog", "internal/fleet/policy"},
		never: append([]string{"internal/client", "internal/archiver", "internal/restorer", "internal/maintenance", "internal/repair", "internal/check", "internal/chunker"}, keyHolders...),
	},
	{
		why:      "backends move opaque objects and sit below everything that interprets them",
		from:     []string{"internal/storage"},
		never:    append([]string{"internal/client", "internal/server", "internal/archiver", "internal/restorer", "internal/maintenance", "internal/repair", "internal/check", "internal/atrest"}, keyHolders...),
		prodOnly: true,
	},
	{
		why:   "the repository format knows nothing of the features built on it",
		from:  []string{"internal/repository", "internal/crypto", "internal/keyring", "internal/chunker", "internal/compress"},
		never: []string{"internal/client", "internal/archiver", "internal/restorer", "internal/maintenance", "internal/repair", "internal/check", "internal/server", "internal/serverdb"},
	},
	{
		why:   "features are called by the client library, never the other way round",
		from:  []string{"internal/archiver", "internal/restorer", "internal/maintenance", "internal/repair", "internal/check", "internal/snapdiff", "internal/dump"},
		never: []string{"internal/client", "internal/server", "internal/serverdb"},
	},
	{
		why:    "the client library is the top of internal/: only commands call it",
		from:   []string{"internal/"},
		except: []string{"internal/client"},
		never:  []string{"internal/client"},
	},
	{
		why:      "the TLS policy uses the standard library only: the scanner and the server build on it",
		from:     []string{"internal/tlspolicy"},
		never:    []string{"internal/"},
		prodOnly: true, // its tests borrow internal/pki's CA
	},
	{
		why:   "the TLS scanner audits any port: it knows nothing of the server it may audit",
		from:  []string{"internal/tlsscan"},
		never: []string{"internal/server", "internal/serverdb", "internal/storage", "internal/wire"},
	},
	{
		why:   "the schedule engine is shared by the server and the agent: it imports no other coffer package",
		from:  []string{"internal/schedule"},
		never: []string{"internal/"},
	},
	{
		why:   "small utilities import no other coffer package",
		from:  []string{"internal/atomicfile", "internal/bytesize", "internal/bufpool", "internal/padding", "internal/termesc"},
		never: []string{"internal/"},
	},
}

type pkg struct {
	ImportPath string
	Deps       []string
}

func under(path string, prefixes []string) bool {
	for _, p := range prefixes {
		p = module + p
		if path == p || strings.HasPrefix(path, p+"/") || strings.HasSuffix(p, "/") && strings.HasPrefix(path, p) {
			return true
		}
	}
	return false
}

func listPackages(t *testing.T, withTests bool) []pkg {
	t.Helper()
	args := []string{"list", "-deps=false", "-json=ImportPath,Deps"}
	if withTests {
		args = append(args, "-test")
	}
	cmd := exec.Command("go", append(args, "./...")...) // #nosec G204 -- fixed arguments
	cmd.Dir = "../.."
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("go list: %v\n%s", err, ee.Stderr)
		}
		t.Fatalf("go list: %v", err)
	}
	var pkgs []pkg
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for {
		var p pkg
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		// "pkg [pkg.test]" variants name the same package with its tests;
		// "pkg.test" is the generated main that links them.
		p.ImportPath, _, _ = strings.Cut(p.ImportPath, " ")
		if strings.HasSuffix(p.ImportPath, ".test") {
			continue
		}
		pkgs = append(pkgs, p)
	}
	return pkgs
}

// TestImportRules checks every rule against the import graph, production
// code and tests alike (a test helper must not smuggle keys into a server
// package's test binary either).
func TestImportRules(t *testing.T) {
	t.Parallel()
	for _, withTests := range []bool{false, true} {
		pkgs := listPackages(t, withTests)
		covered := map[int]int{}
		for _, p := range pkgs {
			for i, r := range rules {
				if !under(p.ImportPath, r.from) || under(p.ImportPath, r.except) {
					continue
				}
				if withTests && r.prodOnly {
					covered[i]++
					continue
				}
				covered[i]++
				for _, d := range p.Deps {
					d, _, _ = strings.Cut(d, " ")
					if d != p.ImportPath && strings.HasPrefix(d, module) && under(d, r.never) && !under(d, r.from) {
						t.Errorf("%s depends on %s (tests included: %v): %s", strings.TrimPrefix(p.ImportPath, module), strings.TrimPrefix(d, module), withTests, r.why)
					}
				}
			}
		}
		// Each rule must cover real packages, or it proves nothing.
		for i, r := range rules {
			if covered[i] == 0 {
				t.Errorf("rule %q matches no package", r.why)
			}
		}
	}
}

// TestRulesCanFail makes sure the matcher sees a violation where one is.
func TestRulesCanFail(t *testing.T) {
	t.Parallel()
	if !under(module+"internal/keyring", keyHolders) || !under(module+"internal/storage/local", []string{"internal/storage"}) {
		t.Fatal("under misses a package it covers")
	}
	if under(module+"internal/storagex", []string{"internal/storage"}) {
		t.Fatal("under matches a mere name prefix")
	}
	if !under(module+"internal/padding", []string{"internal/"}) {
		t.Fatal("a trailing slash must match every package below")
	}
}
