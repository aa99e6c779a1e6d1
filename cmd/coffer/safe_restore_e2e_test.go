package main

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestRestoreSafe restores, with --safe, a snapshot holding a device node
// with /dev/mem's numbers, a setuid-root program, a file capability and a
// trusted.* xattr (issue 10, item 9): none of them may come back, and the
// summary says what was left out.
func TestRestoreSafe(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("needs root to create device nodes, setuid-root files, capabilities and trusted.* xattrs")
	}
	e := newEnv(t)
	e.init()
	src := filepath.Join(e.dir, "src")
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	present := map[string]bool{}
	try := func(name string, err error) {
		if err != nil {
			t.Logf("not tested: %s: the kernel or filesystem refused it: %v", name, err)
			return
		}
		present[name] = true
	}
	try("mem", errors.Join(unix.Mknod(filepath.Join(src, "mem"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 1))),
		unix.Chmod(filepath.Join(src, "mem"), 0o666)))
	writeFile(t, filepath.Join(src, "suid"), []byte("#!/bin/sh\n"))
	try("suid", unix.Chmod(filepath.Join(src, "suid"), 0o4755))
	writeFile(t, filepath.Join(src, "cap"), []byte("bind"))
	capv := make([]byte, 20) // VFS_CAP_REVISION_2, effective, CAP_NET_BIND_SERVICE
	binary.LittleEndian.PutUint32(capv[0:], 0x02000000|1)
	binary.LittleEndian.PutUint32(capv[4:], 1<<unix.CAP_NET_BIND_SERVICE)
	try("cap", unix.Setxattr(filepath.Join(src, "cap"), "security.capability", capv, 0))
	writeFile(t, filepath.Join(src, "trusted"), []byte("t"))
	try("trusted", unix.Setxattr(filepath.Join(src, "trusted"), "trusted.secret", []byte("t"), 0))
	if len(present) == 0 {
		t.Skip("the kernel or filesystem refused every privileged entry")
	}
	e.must("backup", "--repo", e.repo, src)

	dst := filepath.Join(e.dir, "dst")
	so, se, code := e.run("restore", "latest", "--repo", e.repo, "--target", dst, "--safe")
	if code != 0 {
		t.Fatalf("restore --safe: exit %d\n%s%s", code, so, se)
	}
	got := filepath.Join(dst, src)
	var st unix.Stat_t
	if present["mem"] {
		if err := unix.Lstat(filepath.Join(got, "mem"), &st); !errors.Is(err, unix.ENOENT) {
			t.Errorf("device node restored with --safe (mode %#o, err %v)", st.Mode, err)
		}
		if !strings.Contains(se, "mem: device node not restored") {
			t.Errorf("no warning for the skipped device:\n%s", se)
		}
		if !strings.Contains(so, "left out: 1 device nodes") {
			t.Errorf("summary does not count the device:\n%s", so)
		}
	}
	if present["suid"] {
		if err := unix.Lstat(filepath.Join(got, "suid"), &st); err != nil {
			t.Fatal(err)
		}
		if st.Mode&0o7777 != 0o755 {
			t.Errorf("setuid program restored as mode %#o, want 0755", st.Mode&0o7777)
		}
	}
	if present["cap"] && getxattr(filepath.Join(got, "cap"), "security.capability") != nil {
		t.Error("file capability restored with --safe")
	}
	if present["trusted"] && getxattr(filepath.Join(got, "trusted"), "trusted.secret") != nil {
		t.Error("trusted.* xattr restored with --safe")
	}

	// The JSON summary counts the same.
	dst2 := filepath.Join(e.dir, "dst2")
	so, se, code = e.run("restore", "latest", "--repo", e.repo, "--target", dst2, "--safe", "--json")
	if code != 0 {
		t.Fatalf("restore --safe --json: exit %d\n%s%s", code, so, se)
	}
	var sum restoreSummaryJSON
	lines := strings.Split(strings.TrimSpace(so), "\n")
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &sum); err != nil || sum.Safe == nil {
		t.Fatalf("summary %q: %v", lines[len(lines)-1], err)
	}
	want := restoreSafeJSON{}
	if present["mem"] {
		want.DevicesSkipped = 1
	}
	if present["suid"] {
		want.SetIDCleared = 1
	}
	for _, n := range []string{"cap", "trusted"} {
		if present[n] {
			want.XattrsDropped++
		}
	}
	if sum.Safe.DevicesSkipped != want.DevicesSkipped || sum.Safe.SetIDCleared != want.SetIDCleared || sum.Safe.XattrsDropped < want.XattrsDropped {
		t.Errorf("JSON safe counts %+v, want %+v (xattrs at least)", *sum.Safe, want)
	}
}
