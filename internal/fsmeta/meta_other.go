//go:build !linux

package fsmeta

import (
	"errors"
	"fmt"
	"os"
)

// Lstat is implemented on Linux only.
func Lstat(path string) (*Meta, error) {
	return nil, fmt.Errorf("lstat %q: %w", path, errors.ErrUnsupported)
}

// LstatNoFileFlags is implemented on Linux only.
func LstatNoFileFlags(path string) (*Meta, error) { return Lstat(path) }

// FileFlags reports no inode flags outside Linux.
func FileFlags(f *os.File) uint32 { return 0 }

// ApplyFile is implemented on Linux only.
func ApplyFile(f *os.File, path string, m *Meta, opt ApplyOptions) error {
	return Apply(path, m, opt)
}

// Create is implemented on Linux only.
func Create(path string, m *Meta) error {
	return fmt.Errorf("create %q: %w", path, errors.ErrUnsupported)
}

// Apply is implemented on Linux only.
func Apply(path string, m *Meta, opt ApplyOptions) error {
	return fmt.Errorf("apply %q: %w", path, errors.ErrUnsupported)
}

// DataRegions reports the whole file as data where holes cannot be found.
func DataRegions(f *os.File, size int64) ([]Region, error) {
	if size <= 0 {
		return nil, nil
	}
	return []Region{{Offset: 0, Length: size}}, nil
}
