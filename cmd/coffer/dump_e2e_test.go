package main

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestDumpStdinSnapshotAndTar(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.init()
	data := bytes.Repeat([]byte("INSERT INTO t VALUES (1);\n"), 200000)
	cmd := exec.Command(cofferBin, "backup", "--repo", e.repo, "--stdin", "--stdin-filename", "mydb.sql")
	cmd.Env = e.environ(testPass)
	cmd.Stdin = bytes.NewReader(data)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("stdin backup: %v %s", err, out)
	}
	if out := e.must("dump", "--repo", e.repo, "latest", "/mydb.sql"); out != string(data) {
		t.Fatalf("dump of the stdin snapshot: %d bytes, want %d", len(out), len(data))
	}
	target := filepath.Join(e.dir, "out.sql")
	e.must("dump", "--repo", e.repo, "--target", target, "latest", "/mydb.sql")
	if b, err := os.ReadFile(target); err != nil || !bytes.Equal(b, data) {
		t.Fatalf("dump --target: %v", err)
	}
	if _, se, code := e.run("dump", "--repo", e.repo, "--target", target, "latest", "/mydb.sql"); code == 0 || !strings.Contains(se, "exists") {
		t.Fatalf("dump --target over an existing file: exit %d %s", code, se)
	}
	if _, se, code := e.run("dump", "--repo", e.repo, "latest", "/nope"); code != 1 || !strings.Contains(se, "not found") {
		t.Fatalf("dump of a missing path: exit %d %s", code, se)
	}
	if _, _, code := e.run("dump", "--repo", e.repo, "--archive", "rar", "latest", "/"); code != exitUsage {
		t.Fatalf("dump --archive rar: exit %d", code)
	}
}

func TestDumpDirectoryAsTar(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.init()
	src := filepath.Join(e.dir, "src")
	writeFile(t, filepath.Join(src, "a.txt"), []byte("hello\n"))
	writeFile(t, filepath.Join(src, "sub", "b.bin"), bytes.Repeat([]byte{7, 8, 9}, 500000))
	if err := os.Symlink("a.txt", filepath.Join(src, "link")); err != nil {
		t.Fatal(err)
	}
	mtime := time.Date(2021, 3, 4, 5, 6, 7, 890000000, time.UTC)
	if err := os.Chtimes(filepath.Join(src, "a.txt"), mtime, mtime); err != nil {
		t.Fatal(err)
	}
	e.must("backup", "--repo", e.repo, src)
	out := e.must("dump", "--repo", e.repo, "--path", src, "latest", src)
	tr := tar.NewReader(strings.NewReader(out))
	rel := strings.TrimPrefix(src, "/")
	seen := map[string]bool{}
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		seen[h.Name] = true
		content, _ := io.ReadAll(tr)
		switch h.Name {
		case rel + "/a.txt":
			if string(content) != "hello\n" || !h.ModTime.Equal(mtime) || h.Uid != os.Getuid() {
				t.Errorf("a.txt: %q %v uid %d", content, h.ModTime, h.Uid)
			}
		case rel + "/sub/b.bin":
			if !bytes.Equal(content, bytes.Repeat([]byte{7, 8, 9}, 500000)) {
				t.Errorf("b.bin: %d bytes", len(content))
			}
		case rel + "/link":
			if h.Typeflag != tar.TypeSymlink || h.Linkname != "a.txt" {
				t.Errorf("link: %+v", h)
			}
		}
	}
	for _, n := range []string{rel + "/", rel + "/a.txt", rel + "/sub/", rel + "/sub/b.bin", rel + "/link"} {
		if !seen[n] {
			t.Errorf("tar lacks %s (has %v)", n, seen)
		}
	}
}
