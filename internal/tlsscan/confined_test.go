package tlsscan

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// InsecureSkipVerify may appear only in the probe's config, which inspects
// and sends nothing.
func TestInsecureSkipVerifyConfined(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob("*.go")
	if err != nil || len(files) == 0 {
		t.Fatalf("no sources: %v", err)
	}
	allowed := map[string]int{"probe.go": 1}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		src, err := os.ReadFile(f) // #nosec G304 -- this package's own sources
		if err != nil {
			t.Fatal(err)
		}
		n := strings.Count(string(src), "InsecureSkipVerify = true") + strings.Count(string(src), "InsecureSkipVerify: true")
		if n != allowed[f] {
			t.Errorf("%s sets InsecureSkipVerify %d times, want %d", f, n, allowed[f])
		}
	}
}
