package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestFilesystemFidelity backs up and restores every kind of entry with its
// metadata and compares the two trees field by field.
func TestFilesystemFidelity(t *testing.T) {
	t.Parallel()
	if os.Getuid() != 0 {
		t.Skip("needs root for device nodes, ownership and trusted xattrs")
	}
	e := newEnv(t)
	e.init()
	src := filepath.Join(e.dir, "src")
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(src, "dir", "deep"), 0o755))
	writeFile(t, filepath.Join(src, "dir", "deep", "file"), []byte("deep content"))
	rawName := string([]byte{'b', 'a', 'd', 0xff, 0xfe, '\n', 'x'})
	writeFile(t, filepath.Join(src, rawName), []byte("raw name"))
	writeFile(t, filepath.Join(src, "setuid"), []byte("#!/bin/sh\n"))
	must(os.Chmod(filepath.Join(src, "setuid"), 0o4755|os.ModeSetuid))
	must(unix.Chmod(filepath.Join(src, "setuid"), 0o4755))
	must(unix.Chmod(filepath.Join(src, "dir"), 0o1777))
	writeFile(t, filepath.Join(src, "owned"), []byte("owned"))
	must(os.Lchown(filepath.Join(src, "owned"), 1234, 5678))
	must(os.Symlink("does/not/exist", filepath.Join(src, "dangling")))
	must(os.Symlink(rawName, filepath.Join(src, "rawlink")))
	writeFile(t, filepath.Join(src, "hard1"), []byte("linked"))
	must(os.Link(filepath.Join(src, "hard1"), filepath.Join(src, "dir", "hard2")))
	must(unix.Mkfifo(filepath.Join(src, "fifo"), 0o640))
	must(unix.Mknod(filepath.Join(src, "chardev"), unix.S_IFCHR|0o600, int(unix.Mkdev(1, 3))))
	must(unix.Mknod(filepath.Join(src, "blockdev"), unix.S_IFBLK|0o600, int(unix.Mkdev(7, 200))))
	// A sparse file: 64 MiB with data only at 1 MiB and at the end.
	sp, err := os.Create(filepath.Join(src, "sparse"))
	must(err)
	_, err = sp.WriteAt(bytes.Repeat([]byte("S"), 5000), 1<<20)
	must(err)
	_, err = sp.WriteAt([]byte("end"), 64<<20-3)
	must(err)
	must(sp.Close())
	// xattrs, including a POSIX ACL in its raw form.
	must(unix.Lsetxattr(filepath.Join(src, "owned"), "user.comment", []byte("hello\x00world"), 0))
	must(unix.Lsetxattr(filepath.Join(src, "owned"), "trusted.secret", []byte("t"), 0))
	acl := []byte{2, 0, 0, 0, 1, 0, 6, 0, 0xff, 0xff, 0xff, 0xff, 2, 0, 4, 0, 0xe8, 0x03, 0, 0, 4, 0, 4, 0, 0xff, 0xff, 0xff, 0xff,
		0x10, 0, 6, 0, 0xff, 0xff, 0xff, 0xff, 0x20, 0, 0, 0, 0xff, 0xff, 0xff, 0xff}
	if err := unix.Lsetxattr(filepath.Join(src, "hard1"), "system.posix_acl_access", acl, 0); err != nil {
		t.Logf("filesystem refuses POSIX ACLs (%v); ACL not part of this run", err)
	}
	// Nanosecond times, directory times last.
	ts := []unix.Timespec{{Sec: 1500000000, Nsec: 123456789}, {Sec: 1600000000, Nsec: 987654321}}
	for _, p := range []string{"dir/deep/file", "dir/deep", "dir", rawName, "dangling", "sparse", "fifo"} {
		must(unix.UtimesNanoAt(unix.AT_FDCWD, filepath.Join(src, p), ts, unix.AT_SYMLINK_NOFOLLOW))
	}

	e.must("backup", "--repo", e.repo, src)
	dst := filepath.Join(e.dir, "dst")
	e.must("restore", "latest", "--repo", e.repo, "--target", dst)
	got := filepath.Join(dst, src)

	// Every entry's metadata must match.
	err = filepath.Walk(src, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel := strings.TrimPrefix(p, src)
		q := got + rel
		var a, b unix.Stat_t
		if err := unix.Lstat(p, &a); err != nil {
			return err
		}
		if err := unix.Lstat(q, &b); err != nil {
			t.Errorf("%q missing after restore: %v", rel, err)
			return nil
		}
		if a.Mode != b.Mode || a.Uid != b.Uid || a.Gid != b.Gid || a.Size != b.Size || a.Rdev != b.Rdev {
			t.Errorf("%q: mode/owner/size/rdev %o %d:%d %d %d, restored %o %d:%d %d %d", rel, a.Mode, a.Uid, a.Gid, a.Size, a.Rdev, b.Mode, b.Uid, b.Gid, b.Size, b.Rdev)
		}
		if a.Mtim != b.Mtim {
			t.Errorf("%q: mtime %v restored as %v", rel, a.Mtim, b.Mtim)
		}
		for _, name := range []string{"user.comment", "trusted.secret", "system.posix_acl_access"} {
			va := getxattr(p, name)
			if vb := getxattr(q, name); !bytes.Equal(va, vb) {
				t.Errorf("%q: xattr %s %q restored as %q", rel, name, va, vb)
			}
		}
		if fi.Mode().IsRegular() {
			ca, _ := os.ReadFile(p)
			cb, _ := os.ReadFile(q)
			if !bytes.Equal(ca, cb) {
				t.Errorf("%q: content differs after restore", rel)
			}
		}
		if fi.Mode()&os.ModeSymlink != 0 {
			ta, _ := os.Readlink(p)
			tb, _ := os.Readlink(q)
			if ta != tb {
				t.Errorf("%q: link target %q restored as %q", rel, ta, tb)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var h1, h2 syscall.Stat_t
	must(syscall.Stat(filepath.Join(got, "hard1"), &h1))
	must(syscall.Stat(filepath.Join(got, "dir", "hard2"), &h2))
	if h1.Ino != h2.Ino {
		t.Error("hardlinks restored as separate files")
	}
	var s syscall.Stat_t
	must(syscall.Stat(filepath.Join(got, "sparse"), &s))
	if s.Blocks*512 > 1<<20 {
		t.Errorf("sparse file restored with %d bytes allocated", s.Blocks*512)
	}
}

func getxattr(path, name string) []byte {
	buf := make([]byte, 4096)
	n, err := unix.Lgetxattr(path, name, buf)
	if err != nil {
		return nil
	}
	return buf[:n]
}

// TestUnreadableSourceExit3 runs the backup as an unprivileged user so a
// mode-000 file is really unreadable: the snapshot completes, exit code 3.
func TestUnreadableSourceExit3(t *testing.T) {
	t.Parallel()
	if os.Getuid() != 0 {
		t.Skip("needs root to switch to an unprivileged user")
	}
	if _, err := exec.LookPath("setpriv"); err != nil {
		t.Skip("setpriv not installed")
	}
	// t.TempDir's parent is private to root; the unprivileged user needs a
	// path it can traverse.
	base, err := os.MkdirTemp("", "coffer-unreadable-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	e := &env{t: t, dir: base, repo: filepath.Join(base, "repo")}
	e.init()
	src := filepath.Join(e.dir, "src")
	writeFile(t, filepath.Join(src, "ok"), []byte("readable"))
	writeFile(t, filepath.Join(src, "secret"), []byte("unreadable"))
	if err := os.Chmod(filepath.Join(src, "secret"), 0); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("chown", "-R", "65534:65534", e.dir).CombinedOutput(); err != nil {
		t.Fatalf("chown: %v %s", err, out)
	}
	if err := os.Chmod(e.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", cofferBin, "backup", "--repo", e.repo, src)
	cmd.Env = e.environ(testPass)
	out, err := cmd.CombinedOutput()
	ee, ok := err.(*exec.ExitError)
	if !ok || ee.ExitCode() != 3 {
		t.Fatalf("want exit 3, got %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "secret") {
		t.Fatalf("unreadable file not named: %s", out)
	}
	dst := filepath.Join(e.dir, "dst")
	e.must("restore", "latest", "--repo", e.repo, "--target", dst)
	if b, err := os.ReadFile(filepath.Join(dst, src, "ok")); err != nil || string(b) != "readable" {
		t.Fatalf("readable file not in the snapshot: %v", err)
	}
}

func TestStdinBackups(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.init()
	data := bytes.Repeat([]byte("dump line\n"), 100000)
	cmd := exec.Command(cofferBin, "backup", "--repo", e.repo, "--stdin", "--stdin-filename", "db.sql")
	cmd.Env = e.environ(testPass)
	cmd.Stdin = bytes.NewReader(data)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("stdin backup: %v %s", err, out)
	}
	dst := filepath.Join(e.dir, "dst")
	e.must("restore", "latest", "--repo", e.repo, "--target", dst)
	if b, err := os.ReadFile(filepath.Join(dst, "db.sql")); err != nil || !bytes.Equal(b, data) {
		t.Fatalf("stdin content not restored: %v", err)
	}
	// A failing command must not produce a snapshot.
	_, se, code := e.run("backup", "--repo", e.repo, "--stdin-from-command", "--stdin-filename", "x", "--", "sh", "-c", "echo partial; exit 7")
	if code == 0 || !strings.Contains(se, "no snapshot written") {
		t.Fatalf("failed command accepted: %d %s", code, se)
	}
	out := e.must("backup", "--repo", e.repo, "--stdin-from-command", "--stdin-filename", "y", "--json", "--", "echo", "fine")
	if !strings.Contains(out, "snapshot_id") {
		t.Fatalf("no summary: %s", out)
	}
	so := e.must("snapshots", "--repo", e.repo, "--json")
	if strings.Count(so, `"id"`) != 2 {
		t.Fatalf("want 2 snapshots: %s", so)
	}
}

func TestKeyManagement(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	rk := filepath.Join(e.dir, "recovery.txt")
	e.init("--recovery-key-file", rk)
	fi, err := os.Stat(rk)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("recovery key file: %v %v", err, fi)
	}
	key, _ := os.ReadFile(rk)
	src := filepath.Join(e.dir, "src")
	writeFile(t, filepath.Join(src, "f"), []byte("x"))
	e.must("backup", "--repo", e.repo, src)

	newPass := filepath.Join(e.dir, "new.txt")
	writeFile(t, newPass, []byte("the new passphrase\n"))
	e.must(append([]string{"key", "passwd", "--repo", e.repo, "--new-password-file", newPass}, cheapKDF...)...)
	if _, _, code := e.run("snapshots", "--repo", e.repo); code != 12 {
		t.Fatalf("old passphrase still works after passwd: %d", code)
	}
	if _, se, code := e.runPass("the new passphrase", "snapshots", "--repo", e.repo); code != 0 {
		t.Fatalf("new passphrase refused: %s", se)
	}
	if _, se, code := e.runPass(strings.TrimSpace(string(key)), "snapshots", "--repo", e.repo); code != 0 {
		t.Fatalf("recovery key refused: %s", se)
	}
	// Rotation: old data stays readable, new data uses the new term.
	if _, se, code := e.runPass("the new passphrase", "key", "rotate", "--repo", e.repo); code != 0 {
		t.Fatalf("rotate: %s", se)
	}
	writeFile(t, filepath.Join(src, "g"), []byte("after rotation"))
	if _, se, code := e.runPass("the new passphrase", "backup", "--repo", e.repo, src); code != 0 {
		t.Fatalf("backup after rotate: %s", se)
	}
	dst := filepath.Join(e.dir, "dst")
	if _, se, code := e.runPass("the new passphrase", "restore", "latest", "--repo", e.repo, "--target", dst, "--verify"); code != 0 {
		t.Fatalf("restore after rotate: %s", se)
	}
	diffTrees(t, src, filepath.Join(dst, src))
	out, _, _ := e.runPass("the new passphrase", "key", "list", "--repo", e.repo, "--json")
	if strings.Count(out, `"kind"`) != 2 {
		t.Fatalf("want a passphrase and a recovery slot: %s", out)
	}
}

func TestStaleLockRemovedAutomatically(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.init()
	src := filepath.Join(e.dir, "src")
	writeFile(t, filepath.Join(src, "f"), bytes.Repeat([]byte("x"), 1<<20))
	// A backup killed with SIGKILL leaves its lock behind.
	cmd := exec.Command(cofferBin, "backup", "--repo", e.repo, "--stdin", "--stdin-filename", "s")
	cmd.Env = e.environ(testPass)
	pr, pw, _ := os.Pipe()
	cmd.Stdin = pr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Minute) // generous: other tests run beside this one
	for {
		ents, _ := os.ReadDir(filepath.Join(e.repo, "locks"))
		if len(ents) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("backup never took its lock")
		}
		time.Sleep(20 * time.Millisecond)
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	pw.Close()
	pr.Close()
	// An exclusive operation sees the dead process's lock as stale.
	if _, se, code := e.run("key", "rotate", "--repo", e.repo); code != 0 {
		t.Fatalf("stale lock blocked an exclusive operation: %d %s", code, se)
	}
	e.must("backup", "--repo", e.repo, src)
}
