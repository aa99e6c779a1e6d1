// Package atomicfile writes files durably and atomically: the data goes to a
// temporary file beside the target, is fsynced, then takes the target's name
// (replacing it, or never replacing it), and the directory is fsynced.
package atomicfile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// Write replaces path with data, atomically and durably: after Write returns
// nil, a crash leaves either the old file or the whole new one, never a mix,
// and the new name is on stable storage. perm is applied to the new file.
func Write(path string, data []byte, perm os.FileMode) error {
	return WriteFunc(path, perm, false, func(f *os.File) error {
		_, err := f.Write(data)
		return err
	})
}

// WriteNew is Write that never replaces: if path exists it fails with an
// error matching fs.ErrExist and leaves the existing file untouched.
func WriteNew(path string, data []byte, perm os.FileMode) error {
	return WriteFunc(path, perm, true, func(f *os.File) error {
		_, err := f.Write(data)
		return err
	})
}

// WriteFunc is Write (or, with noReplace, WriteNew) for content written by
// fill into the temporary file. A failing fill leaves nothing behind.
func WriteFunc(path string, perm os.FileMode, noReplace bool, fill func(*os.File) error) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	defer func() {
		if f != nil {
			_ = f.Close()
		}
		if err != nil {
			_ = os.Remove(tmp) // #nosec G703 -- our own temporary file
		}
	}()
	if err := f.Chmod(perm); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := fill(f); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("write %s: fsync: %w", path, err)
	}
	cerr := f.Close()
	f = nil
	if cerr != nil {
		return fmt.Errorf("write %s: %w", path, cerr)
	}
	if noReplace {
		err = Publish(tmp, path)
	} else {
		err = os.Rename(tmp, path) // #nosec G703 -- the caller names the file
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return SyncDir(dir)
}

// Publish gives the complete, synced file tmp the name final unless final
// exists, atomically. An existing final fails with an error matching
// fs.ErrExist, and tmp is then left for the caller to remove. Where the
// filesystem cannot rename without replacing, it links and removes tmp.
// The caller syncs final's directory.
func Publish(tmp, final string) error {
	err := renameNoReplace(tmp, final)
	if err == nil {
		return nil
	}
	if !errors.Is(err, errNoReplaceUnsupported) {
		return err
	}
	return PublishLink(tmp, final)
}

// PublishLink is Publish by link(2), which never replaces, then removal of
// tmp: the path Publish takes where the filesystem cannot rename without
// replacing. Callers use Publish; tests call this to cover that path.
func PublishLink(tmp, final string) error {
	if err := os.Link(tmp, final); err != nil {
		return err
	}
	// The file is complete under its name; a leftover temporary file is
	// harmless and the caller's cleanup removes it.
	_ = os.Remove(tmp) // #nosec G703 -- our own temporary file
	return nil
}

// SyncDir fsyncs a directory, making the names created or removed in it
// durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir) // #nosec G304 G703 -- a directory the caller just wrote into
	if err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}

// IsExist reports whether err says a file already exists.
func IsExist(err error) bool { return errors.Is(err, fs.ErrExist) }
