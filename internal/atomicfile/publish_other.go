//go:build !linux

package atomicfile

import (
	"errors"
	"os"
)

// errNoReplaceUnsupported reports a filesystem without RENAME_NOREPLACE.
var errNoReplaceUnsupported = errors.New("rename without replace not supported")

// renameNoReplace is only available on Linux; elsewhere Publish links.
var renameNoReplace = func(oldpath, newpath string) error {
	return errNoReplaceUnsupported
}

// renameNoReplaceAt is only available on Linux; elsewhere PublishAt links.
var renameNoReplaceAt = func(dir *os.File, oldname, newname string) error {
	return errNoReplaceUnsupported
}
