package agent

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// ErrOutsideRestoreRoot: a restore's target is not under the policy's
// restore root and the agent does not allow restores in place.
var ErrOutsideRestoreRoot = errors.New("restore target is outside the restore root")

// confine checks that target lies under root, following symbolic links in
// the part of target that exists: a link under the root that points out
// of it does not let a restore write there. It creates root (mode 0700)
// when it does not exist.
func confine(root, target string) error {
	if !filepath.IsAbs(target) || filepath.Clean(target) != target {
		return fmt.Errorf("%w: %q is not a clean absolute path", ErrOutsideRestoreRoot, target)
	}
	if !within(root, target) {
		return fmt.Errorf("%w: %s is not under %s (start the agent with --allow-restore-in-place to restore elsewhere)", ErrOutsideRestoreRoot, target, root)
	}
	if err := os.MkdirAll(root, 0o700); err != nil {
		return fmt.Errorf("restore root: %w", err)
	}
	realRoot, err := filepath.EvalSymlinks(root)
	if err != nil {
		return fmt.Errorf("restore root: %w", err)
	}
	p := target
	for {
		if _, err := os.Lstat(p); err == nil {
			break
		} else if !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("restore target: %w", err)
		}
		p = filepath.Dir(p)
	}
	real, err := filepath.EvalSymlinks(p)
	if err != nil {
		return fmt.Errorf("restore target: %w", err)
	}
	if !within(realRoot, real) {
		return fmt.Errorf("%w: %s leads to %s, outside %s", ErrOutsideRestoreRoot, p, real, realRoot)
	}
	return nil
}

// within reports whether path is root or below it (both clean).
func within(root, path string) bool {
	rel, err := filepath.Rel(root, path)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, "../") && !filepath.IsAbs(rel)
}
