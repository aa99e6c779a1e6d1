// Package regfile opens files that must be regular files without ever
// blocking: a FIFO or device planted where one is expected is refused with
// ErrNotRegular instead of hanging the process in open(2) or read(2).
package regfile

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"syscall"
)

// ErrNotRegular is wrapped by the error for a path that holds something
// other than a regular file (a FIFO, a device, a socket, a directory).
var ErrNotRegular = errors.New("not a regular file")

// Open opens path for reading and returns it with its file information,
// if it is a regular file. The open itself does not block (O_NONBLOCK: a
// FIFO without a writer opens at once), the type is checked on the opened
// descriptor, so a path swapped after a check cannot slip through, and
// the descriptor is put back into blocking mode for the reads that follow.
// A final symbolic link is followed, as os.Open does.
func Open(path string) (*os.File, fs.FileInfo, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0) // #nosec G304 -- callers name their own files
	if err != nil {
		return nil, nil, err
	}
	return check(f)
}

// OpenIn is Open for name inside root: the path is resolved by root, which
// refuses to leave it.
func OpenIn(root *os.Root, name string) (*os.File, fs.FileInfo, error) {
	f, err := root.OpenFile(name, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, nil, err
	}
	return check(f)
}

// check keeps f if it is a regular file and makes its reads blocking.
func check(f *os.File) (*os.File, fs.FileInfo, error) {
	fi, err := f.Stat()
	if err == nil && !fi.Mode().IsRegular() {
		err = fmt.Errorf("%w (%s)", ErrNotRegular, Describe(fi.Mode()))
	}
	if err == nil {
		err = setBlocking(f)
	}
	if err != nil {
		_ = f.Close()
		return nil, nil, &fs.PathError{Op: "open", Path: f.Name(), Err: err}
	}
	return f, fi, nil
}

// setBlocking clears O_NONBLOCK on f's descriptor.
func setBlocking(f *os.File) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = syscall.SetNonblock(int(fd), false) }); err != nil { // #nosec G115 -- a descriptor fits an int
		return err
	}
	return serr
}

// ReadFile reads the regular file at path whole, refusing one larger than
// max bytes (checked by its size before reading, and by what is read).
func ReadFile(path string, max int64) ([]byte, error) {
	f, fi, err := Open(path)
	if err != nil {
		return nil, err
	}
	defer func() { _ = f.Close() }()
	if fi.Size() > max {
		return nil, fmt.Errorf("%s: %d bytes, larger than the %d allowed", path, fi.Size(), max)
	}
	b, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("%s: larger than the %d bytes allowed", path, max)
	}
	return b, nil
}

// Describe names the type of a file mode for an error message.
func Describe(m fs.FileMode) string {
	switch {
	case m.IsRegular():
		return "a regular file"
	case m.IsDir():
		return "a directory"
	case m&fs.ModeNamedPipe != 0:
		return "a FIFO"
	case m&fs.ModeSymlink != 0:
		return "a symbolic link"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeCharDevice != 0:
		return "a character device"
	case m&fs.ModeDevice != 0:
		return "a block device"
	}
	return "not a regular file"
}
