//go:build !linux

package atomicfile

import "errors"

// errNoReplaceUnsupported reports a filesystem without RENAME_NOREPLACE.
var errNoReplaceUnsupported = errors.New("rename without replace not supported")

// renameNoReplace is only available on Linux; elsewhere Publish links.
var renameNoReplace = func(oldpath, newpath string) error {
	return errNoReplaceUnsupported
}
