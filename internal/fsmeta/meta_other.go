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
