package main

import (
	"io/fs"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// dirSize is the bytes of the regular files below dir.
func dirSize(t *testing.T, dir string) int64 {
	t.Helper()
	var n int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			fi, err := d.Info()
			if err != nil {
				return err
			}
			n += fi.Size()
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// randomBytes returns n incompressible bytes, the same for the same seed.
func randomBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)) // #nosec G404 -- test data
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// TestLimitUploadDownload: a backup under --limit-upload takes at least
// as long as its bytes need at that rate, a restore under
// --limit-download too, and a bad rate is a usage error.
func TestLimitUploadDownload(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.init()
	src := filepath.Join(e.dir, "src")
	writeFile(t, filepath.Join(src, "f"), randomBytes(1, 1<<20))
	before := dirSize(t, e.repo)
	const rate = 512 << 10
	start := time.Now()
	e.must("backup", "--repo", e.repo, "--limit-upload", "512", src) // plain number: KiB/s
	up := time.Since(start)
	sent := dirSize(t, e.repo) - before
	want := time.Duration(float64(sent) / rate * float64(time.Second))
	t.Logf("backup stored %d bytes in %v under 512 KiB/s (%v at the limit)", sent, up, want)
	if up < want*9/10 {
		t.Errorf("backup stored %d bytes in %v: faster than --limit-upload 512 KiB/s allows (%v)", sent, up, want)
	}

	start = time.Now()
	e.must("restore", "latest", "--repo", e.repo, "--target", filepath.Join(e.dir, "dst"), "--limit-download", "1MiB/s")
	down := time.Since(start)
	t.Logf("restore of 1 MiB took %v under 1 MiB/s", down)
	if down < 900*time.Millisecond {
		t.Errorf("restore read at least 1 MiB in %v under --limit-download 1MiB/s", down)
	}

	for _, bad := range []string{"fast", "1.5", "-2"} {
		_, se, code := e.run("snapshots", "--repo", e.repo, "--limit-upload", bad)
		if code != exitUsage || !strings.Contains(se, "limit-upload") {
			t.Errorf("--limit-upload %s: exit %d, %q; want a usage error naming the flag", bad, code, se)
		}
	}
}
