//go:build !linux

package keyring

// prepareWorkArea does nothing outside Linux; see workarea_linux.go.
func prepareWorkArea(int) {}
