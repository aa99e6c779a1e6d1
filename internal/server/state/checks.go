package state

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"github.com/coffer-backup/coffer/internal/fleet/policy"
	"github.com/coffer-backup/coffer/internal/pki"
	"github.com/coffer-backup/coffer/internal/serverdb"
	"golang.org/x/sys/unix"
)

// SecretFiles are the files of a state directory that only the server's
// user may access: the keys (the policy signing key and the first
// administrator's key and the audit key included), the database (token hashes, audit head)
// and the password of a PostgreSQL database.
var SecretFiles = []string{pki.CAKeyFile, pki.ServerKeyFile, KeyFile, AuditKeyFile, serverdb.DefaultFile, serverdb.DefaultFile + "-wal", serverdb.DefaultFile + "-shm", "seed.key",
	policy.KeyFile, filepath.Join(AdminDir, pki.ClientKeyFile), DBPasswordFile}

// maxTreeProblems bounds the problems CheckTree lists one by one.
const maxTreeProblems = 20

// CheckTree checks every file and directory of a state directory before
// the server uses it, naming each problem's path and the command that fixes
// it (errors wrap ErrInsecureFile):
//   - nothing may be writable by group or others (chmod go-w): a writable
//     configuration loosens the TLS policy, a writable directory lets
//     others replace what is in it;
//   - secret files (SecretFiles) may not be accessible to group or others
//     at all (chmod 600), and must be regular files;
//   - everything must belong to this process's user (chown), as CheckOwner
//     requires of the directory itself;
//   - below the directory, no symbolic links: the server would follow one
//     out of its tree.
//
// dir itself may be a symbolic link (a state directory moved elsewhere).
func CheckTree(dir string) error {
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("state directory: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("state directory %s is not a directory", dir)
	}
	c := treeCheck{dir: dir, uid: os.Geteuid(), secrets: map[string]bool{}}
	for _, name := range SecretFiles {
		c.secrets[filepath.Join(dir, name)] = true
	}
	c.check(dir, fi)
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // removed while we looked (the database's journal)
			}
			c.add(fmt.Errorf("check %s: %w", path, err))
			return nil
		}
		if path == dir {
			return nil
		}
		info, err := d.Info()
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			c.add(fmt.Errorf("check %s: %w", path, err))
			return nil
		}
		c.check(path, info)
		return nil
	})
	if err != nil {
		c.add(fmt.Errorf("check %s: %w", dir, err))
	}
	if c.more > 0 {
		c.errs = append(c.errs, fmt.Errorf("%w: and %d more problems below %s (chmod -R go-w %s fixes the modes of all of them)", ErrInsecureFile, c.more, dir, dir))
	}
	return errors.Join(c.errs...)
}

// treeCheck collects CheckTree's problems.
type treeCheck struct {
	dir     string
	uid     int
	secrets map[string]bool
	errs    []error
	more    int
}

func (c *treeCheck) add(err error) {
	if len(c.errs) >= maxTreeProblems {
		c.more++
		return
	}
	c.errs = append(c.errs, err)
}

// check judges one entry of the tree by its lstat information.
func (c *treeCheck) check(path string, fi fs.FileInfo) {
	mode, perm := fi.Mode(), fi.Mode().Perm()
	if mode&fs.ModeSymlink != 0 {
		c.add(fmt.Errorf("%w: %s is a symbolic link; the server does not follow links in its state directory: remove it (rm %s)", ErrInsecureFile, path, path))
		return
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && c.uid >= 0 && st.Uid != uint32(c.uid) { // #nosec G115 -- uids are non-negative and fit in 32 bits
		c.add(fmt.Errorf("%w: %s belongs to uid %d, the server runs as uid %d; run: chown %d %s", ErrWrongUser, path, st.Uid, c.uid, c.uid, path))
	}
	switch {
	case c.secrets[path] && !mode.IsRegular():
		c.add(fmt.Errorf("%w: %s is not a regular file", ErrInsecureFile, path))
	case c.secrets[path] && perm&0o077 != 0:
		c.add(fmt.Errorf("%w: %s has mode %04o (group or others may read it); run: chmod 600 %s", ErrInsecureFile, path, perm, path))
	case perm&0o022 != 0 && mode.IsDir():
		c.add(fmt.Errorf("%w: directory %s has mode %04o (group or others may replace files in it); run: chmod 700 %s", ErrInsecureFile, path, perm, path))
	case perm&0o022 != 0:
		c.add(fmt.Errorf("%w: %s has mode %04o (group or others may change it); run: chmod go-w %s", ErrInsecureFile, path, perm, path))
	}
}

// CheckOwner refuses to work on a state directory that belongs to another
// user: files this process creates (the database's journal) would belong
// to the wrong user and lock the server out.
func CheckOwner(dir string) error {
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil {
		return fmt.Errorf("state directory %s: %w", dir, err)
	}
	if uid := os.Geteuid(); uid >= 0 && st.Uid != uint32(uid) { // #nosec G115 -- uids are non-negative and fit in 32 bits
		return fmt.Errorf("%w: %s belongs to uid %d, this process runs as uid %d; run as its owner (for instance: sudo -u coffer coffer server ...)", ErrWrongUser, dir, st.Uid, uid)
	}
	return nil
}
