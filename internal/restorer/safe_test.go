package restorer

import (
	"context"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/coffer-backup/coffer/internal/archiver"
	"github.com/coffer-backup/coffer/internal/fsmeta"
	"github.com/coffer-backup/coffer/internal/keyring"
	"github.com/coffer-backup/coffer/internal/repository"
	"github.com/coffer-backup/coffer/internal/storage/mem"
	"golang.org/x/sys/unix"
)

// capNetBindService is a security.capability value (VFS_CAP_REVISION_2,
// effective) granting CAP_NET_BIND_SERVICE.
func capNetBindService() []byte {
	b := make([]byte, 20)
	binary.LittleEndian.PutUint32(b[0:], 0x02000000|1)
	binary.LittleEndian.PutUint32(b[4:], 1<<unix.CAP_NET_BIND_SERVICE)
	return b
}

// privilegedSource builds, below a new directory, the entries an
// untrusted snapshot uses to escalate when restored as root. present
// names those the kernel and filesystem let it create; the others are
// skipped with a message.
func privilegedSource(t *testing.T) (src string, present map[string]bool) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to create device nodes, setuid-root files, capabilities and trusted.* xattrs")
	}
	src = t.TempDir()
	present = map[string]bool{}
	try := func(name string, err error) {
		if err != nil {
			t.Logf("not tested: %s: the kernel or filesystem refused it: %v", name, err)
			return
		}
		present[name] = true
	}
	// /dev/mem's numbers, open to everyone.
	try("mem", unix.Mknod(filepath.Join(src, "mem"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 1))))
	if present["mem"] {
		try("mem", unix.Chmod(filepath.Join(src, "mem"), 0o666))
	}
	suid := filepath.Join(src, "suid")
	if err := os.WriteFile(suid, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	try("suid", errors.Join(os.Chown(suid, 0, 0), unix.Chmod(suid, 0o6755)))
	capf := filepath.Join(src, "cap")
	if err := os.WriteFile(capf, []byte("bind"), 0o755); err != nil {
		t.Fatal(err)
	}
	try("cap", unix.Setxattr(capf, "security.capability", capNetBindService(), 0))
	trusted := filepath.Join(src, "trusted")
	if err := os.WriteFile(trusted, []byte("t"), 0o644); err != nil {
		t.Fatal(err)
	}
	try("trusted", errors.Join(unix.Setxattr(trusted, "trusted.secret", []byte("t"), 0),
		unix.Setxattr(trusted, "user.comment", []byte("kept"), 0), os.Chown(trusted, 4321, 4321)))
	immutable := filepath.Join(src, "immutable")
	if err := os.WriteFile(immutable, []byte("i"), 0o644); err != nil {
		t.Fatal(err)
	}
	try("immutable", setFlags(immutable, fsmeta.FlagImmutable))
	t.Cleanup(func() { _ = setFlags(immutable, 0) })
	return src, present
}

func setFlags(path string, flags uint32) error {
	f, err := os.Open(path) // #nosec G304 -- a test file
	if err != nil {
		return err
	}
	defer f.Close()
	return unix.IoctlSetPointerInt(int(f.Fd()), unix.FS_IOC_SETFLAGS, int(flags))
}

// clearFlags lets the test's temporary directory be removed after a
// restore that set immutable flags.
func clearFlags(t *testing.T, dir string) {
	t.Cleanup(func() {
		_ = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.Type().IsRegular() {
				_ = setFlags(p, 0)
			}
			return nil
		})
	})
}

func snapshotOf(t *testing.T, src string) (*repository.Repository, *repository.Snapshot) {
	t.Helper()
	ctx := context.Background()
	r, _, err := repository.Init(ctx, mem.New(), repository.InitOptions{
		Passphrase: []byte("pw"), KDF: keyring.KDFParams{Time: 1, MemoryKiB: 8 * 1024, Threads: 1}})
	if err != nil {
		t.Fatal(err)
	}
	s, err := archiver.New(r, archiver.Options{}).Snapshot(ctx, []string{src})
	if err != nil {
		t.Fatal(err)
	}
	return r, s
}

func xattrOf(t *testing.T, path, name string) ([]byte, bool) {
	t.Helper()
	buf := make([]byte, 256)
	n, err := unix.Lgetxattr(path, name, buf)
	if errors.Is(err, unix.ENODATA) {
		return nil, false
	}
	if err != nil {
		t.Fatalf("getxattr %s %s: %v", path, name, err)
	}
	return buf[:n], true
}

func TestDefaultRestoreKeepsPrivilegedMetadata(t *testing.T) {
	t.Parallel()
	src, present := privilegedSource(t)
	r, s := snapshotOf(t, src)
	dst := t.TempDir()
	clearFlags(t, dst)
	rs := New(r, Options{Target: dst})
	if err := rs.Restore(context.Background(), s.Tree); err != nil {
		t.Fatal(err)
	}
	if errs := rs.Errors(); len(errs) > 0 {
		t.Fatalf("errors: %v", errs)
	}
	out := filepath.Join(dst, src)
	var st unix.Stat_t
	if present["mem"] {
		if err := unix.Lstat(filepath.Join(out, "mem"), &st); err != nil {
			t.Fatal(err)
		}
		if st.Mode&unix.S_IFMT != unix.S_IFCHR || st.Rdev != unix.Mkdev(1, 1) || st.Mode&0o7777 != 0o666 {
			t.Errorf("device restored as mode %#o rdev %#x, want a chardev 1:1 mode 0666", st.Mode, st.Rdev)
		}
	}
	if present["suid"] {
		if err := unix.Lstat(filepath.Join(out, "suid"), &st); err != nil {
			t.Fatal(err)
		}
		if st.Mode&0o7777 != 0o6755 || st.Uid != 0 {
			t.Errorf("setuid file restored as mode %#o uid %d, want 06755 uid 0", st.Mode&0o7777, st.Uid)
		}
	}
	if _, ok := xattrOf(t, filepath.Join(out, "cap"), "security.capability"); present["cap"] && !ok {
		t.Error("file capability not restored")
	}
	if _, ok := xattrOf(t, filepath.Join(out, "trusted"), "trusted.secret"); present["trusted"] && !ok {
		t.Error("trusted.* xattr not restored")
	}
	if present["immutable"] {
		f, err := os.Open(filepath.Join(out, "immutable"))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if fsmeta.FileFlags(f)&fsmeta.FlagImmutable == 0 {
			t.Error("immutable flag not restored")
		}
	}
}

func TestSafeRestoreDropsPrivileges(t *testing.T) {
	t.Parallel()
	src, present := privilegedSource(t)
	r, s := snapshotOf(t, src)
	dst := t.TempDir()
	clearFlags(t, dst)
	p := &Progress{}
	rs := New(r, Options{Target: dst, Safe: true, Progress: p})
	if err := rs.Restore(context.Background(), s.Tree); err != nil {
		t.Fatal(err)
	}
	if errs := rs.Errors(); len(errs) > 0 {
		t.Fatalf("errors: %v", errs)
	}
	out := filepath.Join(dst, src)
	uid, gid := uint32(os.Geteuid()), uint32(os.Getegid()) // #nosec G115 -- IDs of a running process
	var st unix.Stat_t
	if present["mem"] {
		if err := unix.Lstat(filepath.Join(out, "mem"), &st); !errors.Is(err, unix.ENOENT) {
			t.Errorf("device node restored (mode %#o) or other error: %v", st.Mode, err)
		}
		w := rs.Warnings()
		if len(w) != 1 || w[0].Path != filepath.Join(out, "mem") || !errors.Is(w[0].Err, ErrSafeSkipped) {
			t.Errorf("warnings %v, want one for the skipped device", w)
		}
		if p.Safe.Devices.Load() != 1 {
			t.Errorf("devices skipped: %d, want 1", p.Safe.Devices.Load())
		}
	}
	if present["suid"] {
		if err := unix.Lstat(filepath.Join(out, "suid"), &st); err != nil {
			t.Fatal(err)
		}
		if st.Mode&0o7777 != 0o755 {
			t.Errorf("setuid file restored as mode %#o, want 0755", st.Mode&0o7777)
		}
		if p.Safe.SetID.Load() != 1 {
			t.Errorf("set-ID bits cleared on %d entries, want 1", p.Safe.SetID.Load())
		}
	}
	wantXattrs := uint64(0)
	if present["cap"] {
		wantXattrs++
		if _, ok := xattrOf(t, filepath.Join(out, "cap"), "security.capability"); ok {
			t.Error("file capability restored")
		}
	}
	if present["trusted"] {
		wantXattrs++
		tp := filepath.Join(out, "trusted")
		if _, ok := xattrOf(t, tp, "trusted.secret"); ok {
			t.Error("trusted.* xattr restored")
		}
		if v, ok := xattrOf(t, tp, "user.comment"); !ok || string(v) != "kept" {
			t.Errorf("user.comment = %q, %v: user xattrs must be kept", v, ok)
		}
		if err := unix.Lstat(tp, &st); err != nil {
			t.Fatal(err)
		}
		if st.Uid != uid || st.Gid != gid {
			t.Errorf("owned by %d:%d, want the restoring user %d:%d", st.Uid, st.Gid, uid, gid)
		}
		if p.Safe.Owners.Load() == 0 {
			t.Error("files of another owner not counted")
		}
	}
	if got := p.Safe.Xattrs.Load(); got < wantXattrs {
		t.Errorf("privileged xattrs dropped: %d, want at least %d", got, wantXattrs)
	}
	if present["immutable"] {
		f, err := os.Open(filepath.Join(out, "immutable"))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if fsmeta.FileFlags(f)&fsmeta.FlagImmutable != 0 {
			t.Error("immutable flag restored")
		}
		if p.Safe.Flags.Load() != 1 {
			t.Errorf("flags cleared on %d entries, want 1", p.Safe.Flags.Load())
		}
	}
	if len(present) == 0 {
		t.Skip("the kernel or filesystem refused every privileged entry")
	}
}
