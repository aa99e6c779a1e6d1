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
	return &Local{dir: abs, packs: newFileCache(openPacks)}, nil
}
