//go:build unix

package atomicfile

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// PublishAt is Publish for two names in the open directory dir: the
// complete, synced file tmp takes the name final unless final exists
// (fs.ErrExist), atomically. Both names are single path elements resolved
// from dir's descriptor, so nothing on the way to the directory is looked
// up again. The caller syncs dir.
func PublishAt(dir *os.File, tmp, final string) error {
	err := renameNoReplaceAt(dir, tmp, final)
	if err == nil {
		return nil
	}
	if !errors.Is(err, errNoReplaceUnsupported) {
		return err
	}
	return PublishLinkAt(dir, tmp, final)
}

// PublishLinkAt is PublishAt by linkat(2), which never replaces, then
// removal of tmp: the path PublishAt takes where the filesystem cannot
// rename without replacing. Callers use PublishAt; tests call this to
// cover that path.
func PublishLinkAt(dir *os.File, tmp, final string) error {
	var lerr error
	if err := control(dir, func(fd int) { lerr = unix.Linkat(fd, tmp, fd, final, 0) }); err != nil {
		return err
	}
	if lerr != nil {
		return &os.LinkError{Op: "linkat", Old: tmp, New: final, Err: lerr}
	}
	// The file is complete under its name; a leftover temporary file is
	// harmless and the caller's cleanup removes it.
	_ = control(dir, func(fd int) { _ = unix.Unlinkat(fd, tmp, 0) })
	return nil
}

// control runs fn with dir's descriptor.
func control(dir *os.File, fn func(fd int)) error {
	rc, err := dir.SyscallConn()
	if err != nil {
		return err
	}
	return rc.Control(func(fd uintptr) { fn(int(fd)) }) // #nosec G115 -- a descriptor fits an int
}
