//go:build linux

package fsmeta

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"

	"github.com/pkg/xattr"
	"golang.org/x/sys/unix"
)

const helperEnv = "FSMETA_NONROOT_HELPER"

func TestMain(m *testing.M) {
	if p := os.Getenv(helperEnv); p != "" {
		os.Exit(nonRootHelper(p))
	}
	os.Exit(m.Run())
}

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (chown to other users, mknod, trusted.* xattrs); run the tests as root")
	}
}

// Fixed instants with non-zero nanoseconds, distinct per use.
func stamp(i int) (atime, mtime int64) {
	return 1500000000_000000000 + int64(i)*1_000_000_007 + 123456789,
		1600000000_000000000 + int64(i)*2_000_000_011 + 987654321
}

func setTimes(t *testing.T, path string, i int) {
	t.Helper()
	a, m := stamp(i)
	ts := []unix.Timespec{unix.NsecToTimespec(a), unix.NsecToTimespec(m)}
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, path, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		t.Fatalf("utimensat %q: %v", path, err)
	}
}

func lset(t *testing.T, path, name string, value []byte) {
	t.Helper()
	if err := xattr.LSet(path, name, value); err != nil {
		t.Fatalf("set xattr %q on %q: %v", name, path, err)
	}
}

func mustLstat(t *testing.T, path string) *Meta {
	t.Helper()
	m, err := Lstat(path)
	if err != nil {
		t.Fatalf("Lstat %q: %v", path, err)
	}
	return m
}

func jsonRoundTrip(t *testing.T, m *Meta) *Meta {
	t.Helper()
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	var out Meta
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(&out, m) {
		t.Fatalf("JSON round trip changed meta:\n got %#v\nwant %#v", out, *m)
	}
	return &out
}

// restoreEntry does what a restorer does for one non-directory-content entry.
func restoreEntry(t *testing.T, src, dst string, opt ApplyOptions) *Meta {
	t.Helper()
	m := jsonRoundTrip(t, mustLstat(t, src))
	if err := Create(dst, m); err != nil {
		t.Fatalf("Create %q: %v", dst, err)
	}
	if m.Type == TypeFile {
		data, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := Apply(dst, m, opt); err != nil {
		t.Fatalf("Apply %q: %v", dst, err)
	}
	return m
}

// assertRestored compares everything Apply promises to restore.
func assertRestored(t *testing.T, want *Meta, dst string) {
	t.Helper()
	got := mustLstat(t, dst)
	type restorable struct {
		Type             Type
		Mode, UID, GID   uint32
		User, Group      string
		Size             int64
		MTimeNs, ATimeNs int64
		Rdev             uint64
		Flags            uint32
		LinkTarget       []byte
		Xattrs           []Xattr
	}
	pick := func(m *Meta) restorable {
		return restorable{m.Type, m.Mode, m.UID, m.GID, m.User, m.Group, m.Size, m.MTimeNs, m.ATimeNs,
			m.Rdev, m.Flags, m.LinkTarget, m.Xattrs}
	}
	if g, w := pick(got), pick(want); !reflect.DeepEqual(g, w) {
		t.Errorf("%q restored wrongly:\n got %+v\nwant %+v", dst, g, w)
	}
}

func TestRoundTripEveryType(t *testing.T) {
	t.Parallel()
	requireRoot(t)
	src, dst := t.TempDir(), t.TempDir()
	weird := "we\xffird\nname\x80" // invalid UTF-8 and a newline

	type entry struct {
		name  string
		typ   Type
		mode  uint32
		make  func(p string) error
		attrs map[string][]byte
	}
	entries := []entry{
		{"file", TypeFile, 0o4755, func(p string) error { return os.WriteFile(p, []byte("hello\x00world"), 0o600) },
			map[string][]byte{"user.a": []byte("1"), "user.bin": {0, 0xff, '\n'}, "trusted.t": []byte("x"), "user." + weird: []byte("odd")}},
		{"setgid-file", TypeFile, 0o2710, func(p string) error { return os.WriteFile(p, nil, 0o600) }, nil},
		{"dir", TypeDir, 0o3775, func(p string) error { return os.Mkdir(p, 0o700) },
			map[string][]byte{"user.d": []byte("dir value")}},
		{"sticky-dir", TypeDir, 0o1777, func(p string) error { return os.Mkdir(p, 0o700) }, nil},
		{"link", TypeSymlink, 0o777, func(p string) error { return os.Symlink("\xfetarget\nwith/"+weird, p) },
			map[string][]byte{"trusted.sym": []byte("v")}},
		{"fifo", TypeFIFO, 0o640, func(p string) error { return unix.Mkfifo(p, 0o600) }, map[string][]byte{"trusted.f": nil}},
		{"chardev", TypeCharDev, 0o620, func(p string) error { return unix.Mknod(p, unix.S_IFCHR|0o600, int(unix.Mkdev(1, 3))) }, nil},
		{"blockdev", TypeBlockDev, 0o660, func(p string) error { return unix.Mknod(p, unix.S_IFBLK|0o600, int(unix.Mkdev(259, 70000))) }, nil},
		{"socket", TypeSocket, 0o755, func(p string) error { return unix.Mknod(p, unix.S_IFSOCK|0o600, 0) }, nil},
		{weird, TypeFile, 0o640, func(p string) error { return os.WriteFile(p, []byte(weird), 0o600) }, nil},
	}
	for i, e := range entries {
		p := filepath.Join(src, e.name)
		if err := e.make(p); err != nil {
			t.Fatalf("make %q: %v", e.name, err)
		}
		if err := unix.Lchown(p, 1234+i, 5678+i); err != nil {
			t.Fatal(err)
		}
		if e.typ != TypeSymlink {
			if err := unix.Chmod(p, e.mode); err != nil {
				t.Fatal(err)
			}
		}
		for k, v := range e.attrs {
			lset(t, p, k, v)
		}
		setTimes(t, p, i)
	}

	for i, e := range entries {
		m := restoreEntry(t, filepath.Join(src, e.name), filepath.Join(dst, e.name), ApplyOptions{Strict: true})
		if m.Type != e.typ || m.Mode != e.mode || m.UID != uint32(1234+i) || m.GID != uint32(5678+i) {
			t.Errorf("%q: Lstat = type %s mode %#o owner %d:%d", e.name, m.Type, m.Mode, m.UID, m.GID)
		}
		if a, mt := stamp(i); m.ATimeNs != a || m.MTimeNs != mt {
			t.Errorf("%q: Lstat times %d %d, want %d %d", e.name, m.ATimeNs, m.MTimeNs, a, mt)
		}
		if len(m.Xattrs) != len(e.attrs) {
			t.Errorf("%q: Lstat found %d xattrs, want %d", e.name, len(m.Xattrs), len(e.attrs))
		}
		for k, v := range e.attrs {
			if got, ok := m.Xattr(k); !ok || !bytes.Equal(got, v) {
				t.Errorf("%q: xattr %q = %q, %v", e.name, k, got, ok)
			}
		}
		switch e.typ {
		case TypeSymlink:
			if want := "\xfetarget\nwith/" + weird; string(m.LinkTarget) != want || m.Size != int64(len(want)) {
				t.Errorf("link target %q size %d", m.LinkTarget, m.Size)
			}
		case TypeBlockDev:
			if m.Rdev != unix.Mkdev(259, 70000) {
				t.Errorf("rdev %d:%d", unix.Major(m.Rdev), unix.Minor(m.Rdev))
			}
		}
		assertRestored(t, m, filepath.Join(dst, e.name))
	}
	if data, err := os.ReadFile(filepath.Join(dst, "file")); err != nil || string(data) != "hello\x00world" {
		t.Errorf("file content %q, %v", data, err)
	}
}

// posixACL encodes a POSIX ACL as the kernel's system.posix_acl_* value:
// a little-endian version 2 header, then (tag u16, perm u16, id u32) entries
// sorted by tag and id.
func posixACL(entries ...[3]uint32) []byte {
	b := binary.LittleEndian.AppendUint32(nil, 2)
	for _, e := range entries {
		b = binary.LittleEndian.AppendUint16(b, uint16(e[0]))
		b = binary.LittleEndian.AppendUint16(b, uint16(e[1]))
		b = binary.LittleEndian.AppendUint32(b, e[2])
	}
	return b
}

const (
	aclUserObj  = 0x01
	aclUser     = 0x02
	aclGroupObj = 0x04
	aclGroup    = 0x08
	aclMask     = 0x10
	aclOther    = 0x20
	aclNoID     = math.MaxUint32
)

func TestPOSIXACLsRoundTrip(t *testing.T) {
	t.Parallel()
	src, dst := t.TempDir(), t.TempDir()
	access := posixACL(
		[3]uint32{aclUserObj, 6, aclNoID},
		[3]uint32{aclUser, 4, 1001},
		[3]uint32{aclGroupObj, 5, aclNoID},
		[3]uint32{aclGroup, 6, 2002},
		[3]uint32{aclMask, 7, aclNoID},
		[3]uint32{aclOther, 0, aclNoID},
	)
	def := posixACL(
		[3]uint32{aclUserObj, 7, aclNoID},
		[3]uint32{aclUser, 7, 1001},
		[3]uint32{aclGroupObj, 5, aclNoID},
		[3]uint32{aclMask, 7, aclNoID},
		[3]uint32{aclOther, 5, aclNoID},
	)
	f := filepath.Join(src, "f")
	d := filepath.Join(src, "d")
	if err := os.WriteFile(f, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(d, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := xattr.LSet(f, "system.posix_acl_access", access); err != nil {
		if notSupported(err) {
			t.Skipf("filesystem of %s has no POSIX ACLs: %v", src, err)
		}
		t.Fatal(err)
	}
	lset(t, d, "system.posix_acl_default", def)
	lset(t, d, "system.posix_acl_access", access)
	setTimes(t, f, 1)
	setTimes(t, d, 2)

	for _, name := range []string{"f", "d"} {
		m := restoreEntry(t, filepath.Join(src, name), filepath.Join(dst, name), ApplyOptions{})
		if v, ok := m.Xattr("system.posix_acl_access"); !ok || !bytes.Equal(v, access) {
			t.Errorf("%s: access ACL read back as %x, want %x", name, v, access)
		}
		if m.Mode&0o777 != 0o670 {
			t.Errorf("%s: mode %#o, want the ACL's 0670", name, m.Mode)
		}
		assertRestored(t, m, filepath.Join(dst, name))
	}
	if m := mustLstat(t, filepath.Join(dst, "d")); !bytes.Equal(must(m.Xattr("system.posix_acl_default")), def) {
		t.Errorf("default ACL not restored")
	}
	if path, err := exec.LookPath("getfacl"); err == nil {
		out, err := exec.Command(path, "-n", filepath.Join(dst, "f")).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "user:1001:r--") || !strings.Contains(string(out), "group:2002:rw-") {
			t.Errorf("getfacl disagrees: %s %v", out, err)
		}
	}

	// A file restored into a directory with a default ACL inherits an access
	// ACL; Apply must remove it when the backed-up file had none.
	plain := filepath.Join(src, "plain")
	if err := os.WriteFile(plain, nil, 0o640); err != nil {
		t.Fatal(err)
	}
	inherited := filepath.Join(dst, "d", "plain")
	m := restoreEntry(t, plain, inherited, ApplyOptions{})
	if len(m.Xattrs) != 0 {
		t.Fatalf("plain file has xattrs %v", m.Xattrs)
	}
	assertRestored(t, m, inherited)
}

func must(v []byte, ok bool) []byte {
	if !ok {
		return nil
	}
	return v
}

func TestSecurityXattrsSurviveChown(t *testing.T) {
	t.Parallel()
	requireRoot(t)
	src, dst := t.TempDir(), t.TempDir()
	f := filepath.Join(src, "ping")
	if err := os.WriteFile(f, []byte("#!/bin/true\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(f, 1234, 5678); err != nil {
		t.Fatal(err)
	}
	// vfs_cap_data revision 2, effective, permitted = CAP_NET_RAW.
	capv := binary.LittleEndian.AppendUint32(nil, 0x02000000|1)
	capv = binary.LittleEndian.AppendUint32(capv, 1<<13)
	capv = append(capv, make([]byte, 12)...)
	if err := xattr.LSet(f, "security.capability", capv); err != nil {
		t.Skipf("cannot set security.capability here: %v", err)
	}
	selinux := []byte("system_u:object_r:bin_t:s0\x00")
	haveSELinux := xattr.LSet(f, "security.selinux", selinux) == nil
	if !haveSELinux {
		t.Log("security.selinux not settable here; testing security.capability only")
	}
	setTimes(t, f, 3)

	m := restoreEntry(t, f, filepath.Join(dst, "ping"), ApplyOptions{Strict: true})
	if _, ok := m.Xattr("security.capability"); !ok {
		t.Fatal("security.capability not read")
	}
	if v, ok := m.Xattr("security.selinux"); haveSELinux && (!ok || !bytes.Equal(v, selinux)) {
		t.Errorf("security.selinux read as %q", v)
	}
	assertRestored(t, m, filepath.Join(dst, "ping"))

	// A label the local policy gave a restored entry is kept when the backup
	// (from a host without SELinux) has none; other extra xattrs go.
	if haveSELinux {
		p := filepath.Join(dst, "labelled")
		if err := os.WriteFile(p, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		lset(t, p, "security.selinux", selinux)
		lset(t, p, "trusted.stale", []byte("x"))
		if err := Apply(p, &Meta{Type: TypeFile, Mode: 0o644}, ApplyOptions{Strict: true}); err != nil {
			t.Fatal(err)
		}
		got := mustLstat(t, p)
		if _, ok := got.Xattr("security.selinux"); !ok {
			t.Error("Apply removed the local security label")
		}
		if _, ok := got.Xattr("trusted.stale"); ok {
			t.Error("Apply kept an xattr the backup lacks")
		}
	}
}

func TestInodeFlagsRoundTrip(t *testing.T) {
	t.Parallel()
	requireRoot(t)
	src, dst := t.TempDir(), t.TempDir()
	f := filepath.Join(src, "f")
	d := filepath.Join(src, "d")
	if err := os.WriteFile(f, []byte("data"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(d, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { // immutable files cannot be removed
		_ = applyFlags(f, TypeFile, 0)
		_ = applyFlags(d, TypeDir, 0)
		_ = applyFlags(filepath.Join(dst, "f"), TypeFile, 0)
		_ = applyFlags(filepath.Join(dst, "d"), TypeDir, 0)
	})
	if err := applyFlags(f, TypeFile, FlagNoDump|FlagImmutable); err != nil {
		t.Skipf("filesystem of %s has no inode flags: %v", src, err)
	}
	if err := applyFlags(d, TypeDir, FlagNoDump|FlagAppend); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"f", "d"} {
		m := restoreEntry(t, filepath.Join(src, name), filepath.Join(dst, name), ApplyOptions{Strict: true})
		if m.Flags == 0 {
			t.Errorf("%s: flags not read", name)
		}
		assertRestored(t, m, filepath.Join(dst, name))
	}
	if err := os.WriteFile(filepath.Join(dst, "f"), nil, 0o644); err == nil {
		t.Error("restored immutable file is writable")
	}
}

func TestNanosecondTimes(t *testing.T) {
	t.Parallel()
	src, dst := t.TempDir(), t.TempDir()
	f, d, l := filepath.Join(src, "f"), filepath.Join(src, "d"), filepath.Join(src, "l")
	if err := os.WriteFile(f, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(d, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("f", l); err != nil {
		t.Fatal(err)
	}
	for i, p := range []string{f, d, l} {
		setTimes(t, p, 10+i)
		m := restoreEntry(t, p, filepath.Join(dst, filepath.Base(p)), ApplyOptions{})
		a, mt := stamp(10 + i)
		if m.ATimeNs != a || m.MTimeNs != mt || m.MTimeNs%1000 == 0 {
			t.Fatalf("%s: Lstat times %d %d, want %d %d", p, m.ATimeNs, m.MTimeNs, a, mt)
		}
		assertRestored(t, m, filepath.Join(dst, filepath.Base(p)))
	}
	// The symlink's own times were set, not its target's.
	if m := mustLstat(t, filepath.Join(dst, "f")); m.MTimeNs != func() int64 { _, x := stamp(10); return x }() {
		t.Errorf("symlink Apply followed the link: target mtime %d", m.MTimeNs)
	}
}

func TestApplyByName(t *testing.T) {
	t.Parallel()
	requireRoot(t)
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	if err := os.WriteFile(p, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	rootGroup := lookupGroupName(0)
	if lookupUserName(0) != "root" || rootGroup == "" {
		t.Skip("no local user root / group 0 to map names to")
	}
	m := &Meta{Type: TypeFile, Mode: 0o600, UID: 4242, GID: 4343, User: "root", Group: rootGroup}
	for _, tc := range []struct {
		opt      ApplyOptions
		user     string
		uid, gid uint32
	}{
		{ApplyOptions{}, "root", 4242, 4343},
		{ApplyOptions{ByName: true}, "root", 0, 0},
		{ApplyOptions{ByName: true}, "no-such-user-fsmeta", 4242, 0},
	} {
		m.User = tc.user
		if err := Apply(p, m, tc.opt); err != nil {
			t.Fatal(err)
		}
		got := mustLstat(t, p)
		if got.UID != tc.uid || got.GID != tc.gid {
			t.Errorf("%+v user %q: owner %d:%d, want %d:%d", tc.opt, tc.user, got.UID, got.GID, tc.uid, tc.gid)
		}
	}
}

func TestApplyToleratesAndStrictRefuses(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	l := filepath.Join(dir, "l")
	if err := os.Symlink("target", l); err != nil {
		t.Fatal(err)
	}
	// The kernel refuses user.* xattrs on symlinks, even to root.
	m := &Meta{Type: TypeSymlink, LinkTarget: []byte("target"), UID: uint32(os.Getuid()), GID: uint32(os.Getgid()),
		MTimeNs: 1_000_000_001, ATimeNs: 2_000_000_002, Xattrs: []Xattr{{Name: "user.no", Value: []byte("x")}}}
	err := Apply(l, m, ApplyOptions{})
	if !errors.Is(err, ErrIncomplete) || !errors.Is(err, unix.EPERM) {
		t.Fatalf("Apply = %v, want ErrIncomplete wrapping EPERM", err)
	}
	if got := mustLstat(t, l); got.MTimeNs != m.MTimeNs || got.ATimeNs != m.ATimeNs {
		t.Errorf("times not applied after a tolerated failure: %d %d", got.MTimeNs, got.ATimeNs)
	}
	err = Apply(l, m, ApplyOptions{Strict: true})
	if err == nil || errors.Is(err, ErrIncomplete) || !errors.Is(err, unix.EPERM) {
		t.Fatalf("strict Apply = %v, want a hard EPERM error", err)
	}
}

func TestApplyRefusesWrongType(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	victim := filepath.Join(dir, "victim")
	if err := os.WriteFile(victim, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	l := filepath.Join(dir, "l")
	if err := os.Symlink(victim, l); err != nil {
		t.Fatal(err)
	}
	err := Apply(l, &Meta{Type: TypeFile, Mode: 0o4777}, ApplyOptions{})
	if !errors.Is(err, ErrTypeMismatch) {
		t.Fatalf("Apply on a symlink as file = %v, want ErrTypeMismatch", err)
	}
	if m := mustLstat(t, victim); m.Mode != 0o600 {
		t.Fatalf("symlink target was modified: %#o", m.Mode)
	}
	if err := Apply(filepath.Join(dir, "missing"), &Meta{Type: TypeFile}, ApplyOptions{}); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Apply on missing = %v", err)
	}
	if err := Apply(victim, &Meta{Type: "door"}, ApplyOptions{}); !errors.Is(err, ErrInvalidMeta) {
		t.Fatalf("Apply invalid = %v", err)
	}
}

func TestCreateExisting(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := Create(dir, &Meta{Type: TypeDir}); err != nil {
		t.Fatalf("Create on existing dir = %v, want nil", err)
	}
	f := filepath.Join(dir, "f")
	if err := Create(f, &Meta{Type: TypeFile}); err != nil {
		t.Fatal(err)
	}
	if err := Create(f, &Meta{Type: TypeFile}); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("Create over file = %v, want ErrExist", err)
	}
	if err := Create(f, &Meta{Type: TypeDir}); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("Create dir over file = %v, want ErrExist", err)
	}
	if err := Create(filepath.Join(dir, "s"), &Meta{Type: TypeSymlink}); !errors.Is(err, ErrInvalidMeta) {
		t.Fatalf("Create symlink without target = %v", err)
	}
	if m := mustLstat(t, f); m.Mode != 0o600 || m.Size != 0 {
		t.Fatalf("Create file made %#o size %d", m.Mode, m.Size)
	}
}

func TestHardlinksRestoreAsLinks(t *testing.T) {
	t.Parallel()
	src, dst := t.TempDir(), t.TempDir()
	a, b := filepath.Join(src, "a"), filepath.Join(src, "b")
	if err := os.WriteFile(a, []byte("shared"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(a, b); err != nil {
		t.Fatal(err)
	}
	var idx HardlinkIndex
	for _, name := range []string{"a", "b"} {
		m := mustLstat(t, filepath.Join(src, name))
		if m.Links != 2 {
			t.Fatalf("%s: links %d", name, m.Links)
		}
		out := filepath.Join(dst, name)
		if first, seen := idx.LookupOrRemember(m.Device, m.Inode, out); seen {
			if err := os.Link(first, out); err != nil {
				t.Fatal(err)
			}
			continue
		}
		restoreEntry(t, filepath.Join(src, name), out, ApplyOptions{})
	}
	ma, mb := mustLstat(t, filepath.Join(dst, "a")), mustLstat(t, filepath.Join(dst, "b"))
	if ma.Inode != mb.Inode || ma.Links != 2 {
		t.Fatalf("restored names are not one inode: %d %d links %d", ma.Inode, mb.Inode, ma.Links)
	}
}

func blocks(t *testing.T, path string) int64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Blocks * 512
}

func TestSparseFileRoundTrip(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	f, err := os.Create(src)
	if err != nil {
		t.Fatal(err)
	}
	w := NewSparseWriter(f)
	head := bytes.Repeat([]byte("a"), 4096)
	tail := []byte("0123456789")
	if _, err := w.Write(head); err != nil {
		t.Fatal(err)
	}
	if err := w.WriteHole(8 << 20); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(tail); err != nil {
		t.Fatal(err)
	}
	if err := w.WriteHole(8 << 20); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	size := int64(4096 + 8<<20 + 10 + 8<<20)
	m := mustLstat(t, src)
	if m.Size != size {
		t.Fatalf("size %d, want %d (trailing hole lost?)", m.Size, size)
	}
	if used := blocks(t, src); used > 256<<10 {
		t.Skipf("filesystem of %s does not make holes (%d bytes used)", dir, used)
	}

	// Back up with DataRegions, restore with a SparseWriter.
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	regions, err := DataRegions(in, m.Size)
	if err != nil {
		t.Fatal(err)
	}
	var dataLen int64
	for _, r := range regions {
		dataLen += r.Length
	}
	if len(regions) != 2 || regions[0] != (Region{0, 4096}) || dataLen > 64<<10 {
		t.Fatalf("regions %v", regions)
	}
	if pos, _ := in.Seek(0, io.SeekCurrent); pos != 0 {
		t.Fatalf("DataRegions moved the file offset to %d", pos)
	}
	dst := filepath.Join(dir, "dst")
	out, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	sw := NewSparseWriter(out)
	for _, r := range regions {
		if err := sw.WriteHole(r.Offset - sw.Offset()); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, r.Length)
		if _, err := in.ReadAt(buf, r.Offset); err != nil {
			t.Fatal(err)
		}
		if _, err := sw.Write(buf); err != nil {
			t.Fatal(err)
		}
	}
	if err := sw.WriteHole(m.Size - sw.Offset()); err != nil {
		t.Fatal(err)
	}
	if err := sw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := Apply(dst, m, ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	assertRestored(t, m, dst)
	if bs, bd := blocks(t, src), blocks(t, dst); bd != bs {
		t.Errorf("restored file uses %d bytes on disk, source %d", bd, bs)
	}
	want, _ := os.ReadFile(src)
	got, _ := os.ReadFile(dst)
	if !bytes.Equal(got, want) || !bytes.Equal(got[4096+8<<20:][:10], tail) {
		t.Fatal("restored sparse content differs")
	}

	// A file without holes is one region; an empty one none.
	full := filepath.Join(dir, "full")
	if err := os.WriteFile(full, head, 0o644); err != nil {
		t.Fatal(err)
	}
	ff, _ := os.Open(full)
	defer ff.Close()
	if r, err := DataRegions(ff, 4096); err != nil || !reflect.DeepEqual(r, []Region{{0, 4096}}) {
		t.Fatalf("full file regions %v %v", r, err)
	}
	if r, err := DataRegions(ff, 0); err != nil || r != nil {
		t.Fatalf("empty regions %v %v", r, err)
	}
}

func TestWriteSparseProperty(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	r := rand.New(rand.NewPCG(3, 4))
	for iter := range 40 {
		// Content made of random-length zero and data runs.
		var content []byte
		for range 1 + r.IntN(8) {
			n := r.IntN(3 * SparseBlockSize)
			if r.IntN(2) == 0 {
				content = append(content, make([]byte, n)...)
			} else {
				for range n {
					content = append(content, byte(1+r.IntN(255)))
				}
			}
		}
		path := filepath.Join(dir, "f")
		f, err := os.Create(path)
		if err != nil {
			t.Fatal(err)
		}
		w := NewSparseWriter(f)
		for rest := content; len(rest) > 0; {
			n := 1 + r.IntN(len(rest))
			if got, err := w.WriteSparse(rest[:n]); err != nil || got != n {
				t.Fatalf("WriteSparse = %d, %v", got, err)
			}
			rest = rest[n:]
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, content) {
			t.Fatalf("iteration %d: content of %d bytes differs", iter, len(content))
		}
	}

	// Whole zero blocks become holes.
	path := filepath.Join(dir, "holes")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4<<20)
	buf[0], buf[len(buf)-1] = 1, 1
	w := NewSparseWriter(f)
	if _, err := w.WriteSparse(buf); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if used := blocks(t, path); used > 256<<10 {
		t.Errorf("4 MiB of mostly zeros uses %d bytes", used)
	}
	if err := NewSparseWriter(f).WriteHole(-1); err == nil {
		t.Error("negative hole accepted")
	}
}

func TestNanosSaturates(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ sec, nsec, want int64 }{
		{0, 0, 0},
		{-1, 999999999, -1},
		{1, 5, 1_000_000_005},
		{9223372036, 854775807, math.MaxInt64},
		{9223372036, 854775808, math.MaxInt64},
		{1 << 40, 0, math.MaxInt64},
		{-(1 << 40), 0, math.MinInt64},
	} {
		if got := nanos(tc.sec, tc.nsec); got != tc.want {
			t.Errorf("nanos(%d, %d) = %d, want %d", tc.sec, tc.nsec, got, tc.want)
		}
	}
}

// TestNonRootApply runs Apply as an unprivileged user in a child process:
// chown to someone else fails with EPERM, which is expected and silent, but
// setuid must then not be restored.
func TestNonRootApply(t *testing.T) {
	t.Parallel()
	requireRoot(t)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for d := dir; d != "/" && d != os.TempDir(); d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	bin := filepath.Join(dir, "fsmeta.test")
	data, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, data, 0o755); err != nil { // #nosec G306 -- the unprivileged child must run it
		t.Fatal(err)
	}
	work := filepath.Join(dir, "work")
	if err := os.Mkdir(work, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(work, 1234, 5678); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin) // #nosec G204 -- our own test binary
	cmd.Env = append(os.Environ(), helperEnv+"="+work)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 1234, Gid: 5678}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("non-root helper failed: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "helper ok") {
		t.Fatalf("helper did not run: %s", out)
	}
}

func nonRootHelper(dir string) int {
	fail := func(format string, args ...any) int {
		os.Stderr.WriteString("helper: " + strings.TrimSpace(fmt.Sprintf(format, args...)) + "\n")
		return 1
	}
	if os.Geteuid() == 0 {
		return fail("still root")
	}
	p := filepath.Join(dir, "f")
	if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
		return fail("%v", err)
	}
	// Someone else's setuid file: owner cannot be set, so neither is setuid.
	m := &Meta{Type: TypeFile, Mode: 0o4555, UID: 0, GID: 0, MTimeNs: 7, ATimeNs: 8,
		Xattrs: []Xattr{{Name: "user.k", Value: []byte("v")}}}
	err := Apply(p, m, ApplyOptions{})
	if !errors.Is(err, ErrIncomplete) || errors.Is(err, unix.EPERM) {
		return fail("Apply as non-root = %v, want ErrIncomplete for the dropped setuid only", err)
	}
	got, err := Lstat(p)
	if err != nil {
		return fail("%v", err)
	}
	if got.Mode != 0o555 || got.UID != 1234 || got.MTimeNs != 7 {
		return fail("got mode %#o uid %d mtime %d", got.Mode, got.UID, got.MTimeNs)
	}
	if v, ok := got.Xattr("user.k"); !ok || string(v) != "v" {
		return fail("xattr not restored before the read-only mode")
	}
	// Own file: everything restores, setuid included.
	m.UID, m.GID, m.Mode = 1234, 5678, 0o4755
	if err := Apply(p, m, ApplyOptions{}); err != nil {
		return fail("Apply own file: %v", err)
	}
	if got, err := Lstat(p); err != nil || got.Mode != 0o4755 {
		return fail("own setuid file restored as %#o: %v", got.Mode, err)
	}
	// Strict makes the expected EPERM an error.
	m.UID = 0
	if err := Apply(p, m, ApplyOptions{Strict: true}); !errors.Is(err, unix.EPERM) || errors.Is(err, ErrIncomplete) {
		return fail("strict Apply = %v", err)
	}
	os.Stdout.WriteString("helper ok\n")
	return 0
}
