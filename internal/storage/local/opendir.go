package local

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/coffer-backup/coffer/internal/storage"
)

// TempPrefix starts the name of every file Save has not yet published. Only
// a process that owns the directory alone (a server holding its lock) may
// remove such files, left by a crash.
const TempPrefix = tempPrefix

// OpenDir opens the layout in dir without requiring the config object: a
// storage server creates a repository before its client saves the config.
// A missing dir fails with an error wrapping storage.ErrNoRepository.
func OpenDir(dir string) (*Local, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("open repository %s: %w", dir, err)
	}
	fi, err := os.Stat(abs) // #nosec G703 -- the caller's validated directory
	if err != nil || !fi.IsDir() {
		return nil, fmt.Errorf("open repository %s: %w", abs, storage.ErrNoRepository)
	}
	root, err := os.OpenRoot(abs)
	if err != nil {
		return nil, fmt.Errorf("open repository %s: %w", abs, err)
	}
	return &Local{dir: abs, root: root, packs: newFileCache(openPacks)}, nil
}

// OpenDirIn is OpenDir for the directory rel inside parent (a storage
// server's object tree): rel is resolved through parent, and none of its
// directories may be a symbolic link (an error wrapping ErrSymlink). A
// missing rel fails with an error wrapping storage.ErrNoRepository.
func OpenDirIn(parent *os.Root, rel string) (*Local, error) {
	abs := filepath.Join(parent.Name(), rel)
	if err := realDirs(parent, parent.Name(), rel); err != nil {
		if os.IsNotExist(err) {
			return nil, fmt.Errorf("open repository %s: %w", abs, storage.ErrNoRepository)
		}
		return nil, fmt.Errorf("open repository: %w", err)
	}
	root, err := parent.OpenRoot(rel)
	if err != nil {
		return nil, fmt.Errorf("open repository %s: %w", abs, err)
	}
	return &Local{dir: abs, root: root, packs: newFileCache(openPacks)}, nil
}
