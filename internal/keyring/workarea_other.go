//go:build !linux

package keyring

// PrepareWorkArea does nothing outside Linux; see workarea_linux.go.
func PrepareWorkArea(int) {}
