package atomicfile

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// errNoReplaceUnsupported reports a filesystem without RENAME_NOREPLACE.
var errNoReplaceUnsupported = errors.New("rename without replace not supported")

// renameNoReplace renames oldpath to newpath, failing with EEXIST if newpath
// exists. Tests replace it to exercise the link fallback.
var renameNoReplace = func(oldpath, newpath string) error {
	err := unix.Renameat2(unix.AT_FDCWD, oldpath, unix.AT_FDCWD, newpath, unix.RENAME_NOREPLACE)
	if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EOPNOTSUPP) {
		return errNoReplaceUnsupported
	}
	if err != nil {
		return &os.LinkError{Op: "renameat2", Old: oldpath, New: newpath, Err: err}
	}
	return nil
}

// renameNoReplaceAt is renameNoReplace for two names in the directory dir.
// Tests replace it to exercise the link fallback.
var renameNoReplaceAt = func(dir *os.File, oldname, newname string) error {
	var err error
	if cerr := control(dir, func(fd int) { err = unix.Renameat2(fd, oldname, fd, newname, unix.RENAME_NOREPLACE) }); cerr != nil {
		return cerr
	}
	if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EOPNOTSUPP) {
		return errNoReplaceUnsupported
	}
	if err != nil {
		return &os.LinkError{Op: "renameat2", Old: oldname, New: newname, Err: err}
	}
	return nil
}
