package server

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// renameNoReplace renames oldpath to newpath, failing with an error
// wrapping fs.ErrExist if newpath exists.
func renameNoReplace(oldpath, newpath string) (supported bool, err error) {
	err = unix.Renameat2(unix.AT_FDCWD, oldpath, unix.AT_FDCWD, newpath, unix.RENAME_NOREPLACE)
	if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EOPNOTSUPP) {
		return false, nil
	}
	if err != nil {
		return true, &os.LinkError{Op: "renameat2", Old: oldpath, New: newpath, Err: err}
	}
	return true, nil
}
