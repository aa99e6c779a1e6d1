//go:build !linux

package local

import "errors"

// errNoReplaceUnsupported reports a filesystem without RENAME_NOREPLACE.
var errNoReplaceUnsupported = errors.New("rename without replace not supported")

// renameNoReplace is only available on Linux; elsewhere Save links.
var renameNoReplace = func(oldpath, newpath string) error {
	return errNoReplaceUnsupported
}
