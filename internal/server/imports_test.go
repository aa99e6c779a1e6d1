package server

import (
	"encoding/json"
	"errors"
	"io"
	"os/exec"
	"strings"
	"testing"
)

// The server side must not be able to decrypt what clients store: none of
// its packages may reach the client's key material or repository crypto,
// directly or through any dependency. This pins the import graph.
func TestServerCannotImportClientKeys(t *testing.T) {
	const module = "github.com/coffer-backup/coffer/"
	forbidden := []string{
		module + "internal/crypto",
		module + "internal/keyring",
		module + "internal/repository",
		// The agent and the client library hold or reach repository keys;
		// the fleet's server side orders and watches jobs without them.
		module + "internal/agent",
		module + "internal/client",
	}
	// internal/server/... includes internal/server/fleet (users, roles,
	// policies); the fleet's shared packages go with it.
	roots := []string{"./internal/server/...", "./internal/server/replicate/...", "./internal/regfile/...", "./internal/serverdb/...", "./internal/wire/...", "./internal/atrest/...", "./internal/pki/...", "./internal/tlspolicy/...", "./internal/alert/...",
		"./internal/fleet/api/...", "./internal/fleet/policy/...", "./internal/retention/..."}
	for _, withTests := range []bool{false, true} {
		args := []string{"list", "-deps", "-json=ImportPath,Module"}
		if withTests {
			args = append(args, "-test")
		}
		cmd := exec.Command("go", append(args, roots...)...) // #nosec G204 -- fixed arguments
		cmd.Dir = "../.."
		out, err := cmd.Output()
		if err != nil {
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				t.Fatalf("go list: %v\n%s", err, ee.Stderr)
			}
			t.Fatalf("go list: %v", err)
		}
		dec := json.NewDecoder(strings.NewReader(string(out)))
		seen := map[string]bool{}
		for {
			var p struct{ ImportPath string }
			if err := dec.Decode(&p); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				t.Fatal(err)
			}
			// "pkg [pkg.test]" variants name the same package.
			path, _, _ := strings.Cut(p.ImportPath, " ")
			seen[path] = true
		}
		// The listing is real: it holds the server and what it must use.
		for _, want := range []string{module + "internal/server", module + "internal/server/replicate", module + "internal/serverdb", module + "internal/wire", module + "internal/storage", module + "internal/atrest", module + "internal/pki", module + "internal/tlspolicy", module + "internal/server/fleet", module + "internal/server/fleet/control", module + "internal/server/alerting", module + "internal/fleet/api", module + "internal/fleet/policy", module + "internal/server/audit", module + "internal/auditlog", module + "internal/retention", "crypto/aes"} {
			if !seen[want] {
				t.Fatalf("go list -deps (tests %v) does not show %s; the check would prove nothing", withTests, want)
			}
		}
		for _, f := range forbidden {
			for p := range seen {
				if p == f || strings.HasPrefix(p, f+"/") {
					t.Errorf("server packages depend on %s (tests included: %v)", p, withTests)
				}
			}
		}
	}
}
