//go:build !linux

package server

// renameNoReplace is only available on Linux; elsewhere publish links.
func renameNoReplace(oldpath, newpath string) (supported bool, err error) {
	return false, nil
}
