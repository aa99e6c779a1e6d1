package state

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/coffer-backup/coffer/internal/pki"
	"github.com/coffer-backup/coffer/internal/serverdb"
	"golang.org/x/sys/unix"
)

// SecretFiles are the files of a state directory that only the server's
// user may access: the keys and the database (token hashes, audit log).
var SecretFiles = []string{pki.CAKeyFile, pki.ServerKeyFile, KeyFile, serverdb.DefaultFile, serverdb.DefaultFile + "-wal", serverdb.DefaultFile + "-shm"}

// CheckSecrets refuses a state directory that others may write to, and
// secret files that group or others may access at all, naming each file
// and the chmod that fixes it. Missing files are not its concern.
func CheckSecrets(dir string) error {
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("state directory: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("state directory %s is not a directory", dir)
	}
	var errs []error
	if perm := fi.Mode().Perm(); perm&0o022 != 0 {
		errs = append(errs, fmt.Errorf("%w: directory %s has mode %04o (others may replace files in it); run: chmod 700 %s", ErrInsecureFile, dir, perm, dir))
	}
	for _, name := range SecretFiles {
		path := filepath.Join(dir, name)
		fi, err := os.Stat(path)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("check %s: %w", path, err))
			continue
		}
		if !fi.Mode().IsRegular() {
			errs = append(errs, fmt.Errorf("%w: %s is not a regular file", ErrInsecureFile, path))
			continue
		}
		if perm := fi.Mode().Perm(); perm&0o077 != 0 {
			errs = append(errs, fmt.Errorf("%w: %s has mode %04o (group or others may read it); run: chmod 600 %s", ErrInsecureFile, path, perm, path))
		}
	}
	return errors.Join(errs...)
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
