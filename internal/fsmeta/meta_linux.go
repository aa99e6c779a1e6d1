//go:build linux

package fsmeta

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"strings"

	"github.com/pkg/xattr"
	"golang.org/x/sys/unix"
)

// Lstat returns the metadata of the entry at path without following a final
// symlink: lstat(2), the symlink target, every xattr (a filesystem without
// xattr support yields none), the inode flags of files and directories, and
// the owner's names.
//
// If some xattrs could not be read (a non-root reader lacking permission),
// Lstat returns the Meta without them together with an error matching
// ErrIncomplete. Inode flags that cannot be read (the file is not readable by
// the caller, or the filesystem has none) are recorded as 0 without an error.
func Lstat(path string) (*Meta, error) { return lstat(path, true) }

// LstatNoFileFlags is Lstat except that a regular file's inode flags are
// left 0: reading them costs an open(2), and a caller that opens the file
// anyway (the archiver, to read its content) fills Meta.Flags from that
// descriptor with FileFlags instead.
func LstatNoFileFlags(path string) (*Meta, error) { return lstat(path, false) }

// FileFlags returns the RestorableFlags set on an open file or directory,
// or 0 where the filesystem has no inode flags.
func FileFlags(f *os.File) uint32 {
	rc, err := f.SyscallConn()
	if err != nil {
		return 0
	}
	var v uint32
	var ierr error
	if err := rc.Control(func(fd uintptr) {
		v, ierr = unix.IoctlGetUint32(int(fd), unix.FS_IOC_GETFLAGS) // #nosec G115 -- a file descriptor fits in an int
	}); err != nil || ierr != nil {
		return 0
	}
	return v & RestorableFlags
}

func lstat(path string, fileFlags bool) (*Meta, error) {
	var st unix.Stat_t
	if err := retryEINTR(func() error { return unix.Lstat(path, &st) }); err != nil {
		return nil, &fs.PathError{Op: "lstat", Path: path, Err: err}
	}
	typ, ok := typeOf(st.Mode)
	if !ok {
		return nil, fmt.Errorf("lstat %q: mode %#o: %w", path, st.Mode, ErrUnsupportedType)
	}
	m := &Meta{
		Type:    typ,
		Mode:    st.Mode & 0o7777,
		UID:     st.Uid,
		GID:     st.Gid,
		MTimeNs: nanos(int64(st.Mtim.Sec), int64(st.Mtim.Nsec)),
		ATimeNs: nanos(int64(st.Atim.Sec), int64(st.Atim.Nsec)),
		CTimeNs: nanos(int64(st.Ctim.Sec), int64(st.Ctim.Nsec)),
		Inode:   st.Ino,
		Device:  st.Dev,
		Links:   uint64(st.Nlink),
	}
	switch typ {
	case TypeFile:
		m.Size = st.Size
	case TypeSymlink:
		target, err := os.Readlink(path)
		if err != nil {
			return nil, fmt.Errorf("lstat %q: %w", path, err)
		}
		m.LinkTarget = []byte(target)
		m.Size = st.Size
	case TypeCharDev, TypeBlockDev:
		m.Rdev = st.Rdev
	}
	xs, xerr := readXattrs(path)
	m.Xattrs = xs
	if typ == TypeDir || (typ == TypeFile && fileFlags) {
		m.Flags = readFlags(path, typ)
	}
	m.User = lookupUserName(m.UID)
	m.Group = lookupGroupName(m.GID)
	if xerr != nil {
		return m, incomplete([]error{xerr})
	}
	return m, nil
}

// Create makes the entry m describes at path, which must not exist (except
// that an existing directory is accepted for TypeDir, so a restore can target
// an existing tree). Metadata is not applied: call Apply afterwards.
//
//   - dir: mkdir with mode 0700, so the restorer can fill it whatever its
//     final mode.
//   - symlink: the raw LinkTarget bytes.
//   - fifo: mkfifo; chardev, blockdev: mknod with Rdev (needs CAP_MKNOD).
//   - socket: mknod(S_IFSOCK), as rsync does: an inode of socket type that no
//     process listens on, keeping the tree's shape and metadata exact. The
//     archiver may prefer to skip sockets (restic does); that is its choice.
//   - file: an empty file with mode 0600. A restorer normally creates and
//     writes regular files itself and does not call Create for them.
func Create(path string, m *Meta) error {
	if err := m.Validate(); err != nil {
		return fmt.Errorf("create %q: %w", path, err)
	}
	var err error
	switch m.Type {
	case TypeFile:
		var fd int
		err = retryEINTR(func() (e error) {
			fd, e = unix.Open(path, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
			return e
		})
		if err == nil {
			err = unix.Close(fd)
		}
	case TypeDir:
		err = unix.Mkdir(path, 0o700)
		if errors.Is(err, unix.EEXIST) {
			var st unix.Stat_t
			if unix.Lstat(path, &st) == nil && st.Mode&unix.S_IFMT == unix.S_IFDIR {
				return nil
			}
		}
	case TypeSymlink:
		err = unix.Symlink(string(m.LinkTarget), path)
	case TypeFIFO:
		err = unix.Mkfifo(path, 0o600)
	case TypeCharDev:
		err = unix.Mknod(path, unix.S_IFCHR|0o600, devInt(m.Rdev))
	case TypeBlockDev:
		err = unix.Mknod(path, unix.S_IFBLK|0o600, devInt(m.Rdev))
	case TypeSocket:
		err = unix.Mknod(path, unix.S_IFSOCK|0o600, 0)
	}
	if err != nil {
		return &fs.PathError{Op: "create " + string(m.Type), Path: path, Err: err}
	}
	return nil
}

// Apply sets m's metadata on the existing entry at path, never following a
// final symlink, in the order the kernel's side effects require:
//
//  1. owner (lchown): numeric IDs, or by name with opt.ByName. Chown clears
//     setuid/setgid and security.capability, so it comes first.
//  2. xattrs (lsetxattr), ACLs included; xattrs on disk that m lacks (an ACL
//     inherited from a default ACL, say) are removed, except security.* ones,
//     which a security module may have assigned by local policy. Xattrs come
//     before the mode because a non-root owner cannot set user.* xattrs on a
//     read-only file.
//  3. mode (chmod; not for symlinks, which have none). Setting an ACL
//     rewrites the group bits; the mode, recorded with that ACL, agrees.
//  4. atime and mtime (utimensat with AT_SYMLINK_NOFOLLOW, so symlinks too).
//  5. inode flags of files and directories, last because immutable and
//     append-only forbid the steps above.
//
// Data must be written before Apply (writing clears setuid and capabilities),
// and a directory's Apply must come after everything inside it has been
// created and applied, or the directory's mtime moves again (and an immutable
// or read-only directory cannot be filled).
//
// If the owner cannot be set, setuid and setgid are not restored on
// non-directories, so no restore produces a set-ID program owned by the wrong
// user. A non-root caller's EPERM from chown is expected and not reported
// unless a set-ID bit is dropped because of it.
//
// Tolerated failures (owner, xattrs, flags; with Strict none are) leave the
// other steps done and are returned joined in an error matching
// ErrIncomplete. Any other error (the entry is missing or of another type,
// chmod or utimensat failed, m is invalid) does not match ErrIncomplete and
// Apply stopped there.
func Apply(path string, m *Meta, opt ApplyOptions) error {
	if err := m.Validate(); err != nil {
		return fmt.Errorf("apply %q: %w", path, err)
	}
	var st unix.Stat_t
	if err := retryEINTR(func() error { return unix.Lstat(path, &st) }); err != nil {
		return &fs.PathError{Op: "apply", Path: path, Err: err}
	}
	return apply(path, m, opt, &st, pathOps(path, m.Type))
}

// ApplyFile is Apply for a regular file that the caller has open (a
// restorer that has just written it; writes must be complete). Owner,
// xattrs, mode and inode flags are set through f, which spares a path
// lookup each and an open for the flags, and the owner is left alone when it
// is already right. path must name f; the times are set through f too where
// the kernel allows it, else through path without following a symlink.
// Errors are as for Apply.
func ApplyFile(f *os.File, path string, m *Meta, opt ApplyOptions) error {
	if err := m.Validate(); err != nil {
		return fmt.Errorf("apply %q: %w", path, err)
	}
	rc, err := f.SyscallConn()
	if err != nil {
		return fmt.Errorf("apply %q: %w", path, err)
	}
	var fd int
	if err := rc.Control(func(u uintptr) { fd = int(u) }); err != nil { // #nosec G115 -- a file descriptor fits in an int
		return fmt.Errorf("apply %q: %w", path, err)
	}
	var st unix.Stat_t
	if err := retryEINTR(func() error { return unix.Fstat(fd, &st) }); err != nil {
		return &fs.PathError{Op: "apply", Path: path, Err: err}
	}
	// f stays open (the caller closes it after ApplyFile returns), so fd
	// stays valid for the calls below.
	ops := applyOps{
		chown: func(uid, gid uint32) error {
			if st.Uid == uid && st.Gid == gid {
				return nil // chown(2) to the same owner would only cost a syscall
			}
			return retryEINTR(func() error { return unix.Fchown(fd, int(uid), int(gid)) })
		},
		list:   func() ([]string, error) { return listXattrsWith(func() ([]string, error) { return xattr.FList(f) }) },
		get:    func(n string) ([]byte, error) { return xattr.FGet(f, n) },
		set:    func(n string, v []byte) error { return xattr.FSet(f, n, v) },
		remove: func(n string) error { return xattr.FRemove(f, n) },
		chmod:  func(mode uint32) error { return retryEINTR(func() error { return unix.Fchmod(fd, mode) }) },
		utimes: func(ts []unix.Timespec) error {
			err := retryEINTR(func() error { return unix.UtimesNanoAt(fd, "", ts, unix.AT_EMPTY_PATH) })
			if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOENT) { // kernels without AT_EMPTY_PATH here
				err = retryEINTR(func() error { return unix.UtimesNanoAt(unix.AT_FDCWD, path, ts, unix.AT_SYMLINK_NOFOLLOW) })
			}
			return err
		},
		flags: func(want uint32) error { return setFlagsFD(fd, path, want) },
	}
	return apply(path, m, opt, &st, ops)
}

// applyOps are the system calls Apply makes on one entry, by path or by
// descriptor.
type applyOps struct {
	chown  func(uid, gid uint32) error
	list   func() ([]string, error)
	get    func(name string) ([]byte, error)
	set    func(name string, value []byte) error
	remove func(name string) error
	chmod  func(mode uint32) error
	utimes func(ts []unix.Timespec) error
	flags  func(want uint32) error
}

func pathOps(path string, typ Type) applyOps {
	return applyOps{
		chown: func(uid, gid uint32) error {
			return retryEINTR(func() error { return unix.Lchown(path, int(uid), int(gid)) })
		},
		list:   func() ([]string, error) { return listXattrs(path) },
		get:    func(n string) ([]byte, error) { return xattr.LGet(path, n) },
		set:    func(n string, v []byte) error { return xattr.LSet(path, n, v) },
		remove: func(n string) error { return xattr.LRemove(path, n) },
		chmod:  func(mode uint32) error { return chmodNoFollow(path, mode) },
		utimes: func(ts []unix.Timespec) error {
			return retryEINTR(func() error {
				return unix.UtimesNanoAt(unix.AT_FDCWD, path, ts, unix.AT_SYMLINK_NOFOLLOW)
			})
		},
		flags: func(want uint32) error { return applyFlags(path, typ, want) },
	}
}

// apply is Apply's policy over ops; st is the entry's current stat.
func apply(path string, m *Meta, opt ApplyOptions, st *unix.Stat_t, ops applyOps) error {
	if typ, _ := typeOf(st.Mode); typ != m.Type {
		return fmt.Errorf("apply %q: is %s, metadata is for %s: %w", path, typ, m.Type, ErrTypeMismatch)
	}

	var warns []error
	tolerate := func(err error) error {
		if opt.Strict {
			return err
		}
		warns = append(warns, err)
		return nil
	}

	mode := m.Mode
	uid, gid := resolveOwner(m, opt.ByName)
	if err := ops.chown(uid, gid); err != nil {
		expected := errors.Is(err, unix.EPERM) && os.Geteuid() != 0
		if opt.Strict || !expected {
			if err := tolerate(fmt.Errorf("apply %q: chown %d:%d: %w", path, uid, gid, err)); err != nil {
				return err
			}
		}
		if setID := mode & (unix.S_ISUID | unix.S_ISGID); setID != 0 && m.Type != TypeDir {
			mode &^= setID
			warns = append(warns, fmt.Errorf("apply %q: mode %#o restored as %#o because the owner could not be set", path, m.Mode, mode))
		}
	}

	for _, err := range applyXattrs(path, m, ops) {
		if err := tolerate(err); err != nil {
			return err
		}
	}

	if m.Type != TypeSymlink {
		if err := ops.chmod(mode); err != nil {
			return &fs.PathError{Op: "chmod", Path: path, Err: err}
		}
	}

	ts := []unix.Timespec{unix.NsecToTimespec(m.ATimeNs), unix.NsecToTimespec(m.MTimeNs)}
	if err := ops.utimes(ts); err != nil {
		return &fs.PathError{Op: "utimensat", Path: path, Err: err}
	}

	if m.Type == TypeFile || m.Type == TypeDir {
		if err := ops.flags(m.Flags); err != nil {
			if err := tolerate(err); err != nil {
				return err
			}
		}
	}
	return incomplete(warns)
}

// DataRegions lists the regions of f's first size bytes that hold data,
// skipping holes, using SEEK_DATA/SEEK_HOLE. Bytes outside the regions read
// as zeros. Where the filesystem cannot tell, the whole file is one region.
// The file offset is restored; reads should use ReadAt.
func DataRegions(f *os.File, size int64) ([]Region, error) {
	if size <= 0 {
		return nil, nil
	}
	rc, err := f.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("data regions of %s: %w", f.Name(), err)
	}
	var regions []Region
	var serr error
	cerr := rc.Control(func(ufd uintptr) {
		fd := int(ufd) // #nosec G115 -- a file descriptor fits in an int
		cur, err := unix.Seek(fd, 0, io.SeekCurrent)
		if err != nil {
			serr = err
			return
		}
		defer func() {
			if _, err := unix.Seek(fd, cur, io.SeekStart); err != nil && serr == nil {
				serr = err
			}
		}()
		regions, serr = seekRegions(fd, size)
	})
	if cerr != nil {
		return nil, fmt.Errorf("data regions of %s: %w", f.Name(), cerr)
	}
	if serr != nil {
		return nil, fmt.Errorf("data regions of %s: %w", f.Name(), serr)
	}
	return regions, nil
}

func seekRegions(fd int, size int64) ([]Region, error) {
	var regions []Region
	for off := int64(0); off < size; {
		data, err := unix.Seek(fd, off, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) {
			break // only a hole from off to the end
		}
		if err != nil {
			if off == 0 && (errors.Is(err, unix.EINVAL) || errors.Is(err, unix.EOPNOTSUPP)) {
				return []Region{{Offset: 0, Length: size}}, nil
			}
			return nil, fmt.Errorf("seek data at %d: %w", off, err)
		}
		if data >= size {
			break
		}
		hole, err := unix.Seek(fd, data, unix.SEEK_HOLE)
		if err != nil {
			return nil, fmt.Errorf("seek hole at %d: %w", data, err)
		}
		hole = min(hole, size)
		if hole <= data { // the file shrank under us
			break
		}
		regions = append(regions, Region{Offset: data, Length: hole - data})
		off = hole
	}
	return regions, nil
}

func typeOf(mode uint32) (Type, bool) {
	switch mode & unix.S_IFMT {
	case unix.S_IFREG:
		return TypeFile, true
	case unix.S_IFDIR:
		return TypeDir, true
	case unix.S_IFLNK:
		return TypeSymlink, true
	case unix.S_IFIFO:
		return TypeFIFO, true
	case unix.S_IFCHR:
		return TypeCharDev, true
	case unix.S_IFBLK:
		return TypeBlockDev, true
	case unix.S_IFSOCK:
		return TypeSocket, true
	}
	return Type(fmt.Sprintf("mode-%#o", mode&unix.S_IFMT)), false
}

// nanos converts a timespec to nanoseconds, saturating outside int64.
func nanos(sec, nsec int64) int64 {
	const lim = int64(math.MaxInt64) / 1e9
	switch {
	case sec > lim:
		return math.MaxInt64
	case sec < -lim:
		return math.MinInt64
	}
	r := sec * 1e9
	if r > 0 && nsec > math.MaxInt64-r {
		return math.MaxInt64
	}
	return r + nsec
}

func devInt(rdev uint64) int {
	return int(rdev) // #nosec G115 -- dev_t is 64 bits and so is int on 64-bit Linux; mknod takes it as is
}

func retryEINTR(fn func() error) error {
	for {
		if err := fn(); !errors.Is(err, unix.EINTR) {
			return err
		}
	}
}

func notSupported(err error) bool {
	return errors.Is(err, unix.ENOTSUP) || errors.Is(err, unix.EOPNOTSUPP)
}

func listXattrs(path string) ([]string, error) {
	return listXattrsWith(func() ([]string, error) { return xattr.LList(path) })
}

func listXattrsWith(list func() ([]string, error)) ([]string, error) {
	var err error
	for range 3 { // the list can grow between sizing and reading it
		var names []string
		if names, err = list(); !errors.Is(err, unix.ERANGE) {
			return names, err
		}
	}
	return nil, err
}

func readXattrs(path string) ([]Xattr, error) {
	names, err := listXattrs(path)
	if err != nil {
		if notSupported(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("list xattrs of %q: %w", path, err)
	}
	var xs []Xattr
	var errs []error
	for _, n := range names {
		v, err := xattr.LGet(path, n)
		if err != nil {
			if errors.Is(err, xattr.ENOATTR) {
				continue // removed since the listing
			}
			errs = append(errs, fmt.Errorf("read xattr %q of %q: %w", n, path, err))
			continue
		}
		if len(v) == 0 {
			v = nil // one form for "empty", as JSON decoding yields
		}
		xs = append(xs, Xattr{Name: n, Value: v})
	}
	sortXattrs(xs)
	return xs, errors.Join(errs...)
}

func applyXattrs(path string, m *Meta, ops applyOps) []error {
	have, err := ops.list()
	if err != nil {
		if notSupported(err) {
			if len(m.Xattrs) == 0 {
				return nil
			}
			return []error{fmt.Errorf("apply %q: %d xattrs not restored: %w", path, len(m.Xattrs), err)}
		}
		return []error{fmt.Errorf("apply %q: list xattrs: %w", path, err)}
	}
	var errs []error
	present := make(map[string]bool, len(have))
	for _, n := range have {
		if _, ok := m.Xattr(n); ok {
			present[n] = true
			continue
		}
		if strings.HasPrefix(n, "security.") {
			// Labels a security module assigned here (a backup from a host
			// without SELinux has none) are the local policy's business.
			continue
		}
		if err := ops.remove(n); err != nil && !errors.Is(err, xattr.ENOATTR) {
			errs = append(errs, fmt.Errorf("apply %q: remove xattr %q: %w", path, n, err))
		}
	}
	for _, x := range m.Xattrs {
		if present[x.Name] {
			if cur, err := ops.get(x.Name); err == nil && bytes.Equal(cur, x.Value) {
				continue
			}
		}
		if err := ops.set(x.Name, x.Value); err != nil {
			errs = append(errs, fmt.Errorf("apply %q: set xattr %q: %w", path, x.Name, err))
		}
	}
	return errs
}

func chmodNoFollow(path string, mode uint32) error {
	err := retryEINTR(func() error {
		return unix.Fchmodat(unix.AT_FDCWD, path, mode, unix.AT_SYMLINK_NOFOLLOW)
	})
	if !errors.Is(err, unix.EOPNOTSUPP) {
		return err
	}
	// Kernels before 6.6 lack fchmodat2. EOPNOTSUPP also means "symlink" on
	// newer ones, so check before falling back to a chmod that follows.
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT == unix.S_IFLNK {
		return ErrTypeMismatch
	}
	return retryEINTR(func() error { return unix.Chmod(path, mode) })
}

func openForFlags(path string, typ Type, extra int) (int, error) {
	flags := unix.O_RDONLY | unix.O_NONBLOCK | unix.O_NOFOLLOW | unix.O_CLOEXEC | unix.O_NOCTTY | extra
	if typ == TypeDir {
		flags |= unix.O_DIRECTORY
	}
	var fd int
	err := retryEINTR(func() (e error) {
		fd, e = unix.Open(path, flags, 0)
		return e
	})
	return fd, err
}

func readFlags(path string, typ Type) uint32 {
	// O_NOATIME keeps the backup from touching atimes; only the owner or
	// root may use it.
	fd, err := openForFlags(path, typ, unix.O_NOATIME)
	if errors.Is(err, unix.EPERM) {
		fd, err = openForFlags(path, typ, 0)
	}
	if err != nil {
		return 0
	}
	defer func() { _ = unix.Close(fd) }()
	v, err := unix.IoctlGetUint32(fd, unix.FS_IOC_GETFLAGS)
	if err != nil {
		return 0
	}
	return v & RestorableFlags
}

func applyFlags(path string, typ Type, want uint32) error {
	want &= RestorableFlags
	fd, err := openForFlags(path, typ, 0)
	if err != nil {
		if want == 0 {
			return nil
		}
		return fmt.Errorf("apply %q: open for inode flags: %w", path, err)
	}
	defer func() { _ = unix.Close(fd) }()
	return setFlagsFD(fd, path, want)
}

// setFlagsFD sets the restorable inode flags of the open fd to want.
func setFlagsFD(fd int, path string, want uint32) error {
	want &= RestorableFlags
	cur, err := unix.IoctlGetUint32(fd, unix.FS_IOC_GETFLAGS)
	if err != nil {
		if want == 0 {
			return nil
		}
		return fmt.Errorf("apply %q: get inode flags: %w", path, err)
	}
	next := cur&^RestorableFlags | want
	if next == cur {
		return nil
	}
	if err := unix.IoctlSetPointerInt(fd, unix.FS_IOC_SETFLAGS, int(next)); err != nil {
		return fmt.Errorf("apply %q: set inode flags %#x: %w", path, want, err)
	}
	return nil
}
