package agent

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/coffer-backup/coffer/internal/atomicfile"
	"github.com/coffer-backup/coffer/internal/keyring"
)

// DefaultKeyFile is the host key's file name in the identity directory.
const DefaultKeyFile = "repo.key"

// ErrNoHostKey: the host key file does not exist and the agent did not
// create a repository yet.
var ErrNoHostKey = errors.New("no host key")

// readHostKey reads the host key file: a recovery key (CFRK-…) as the
// agent writes it, or any secret an operator put there. With create, a
// missing file is made: a fresh random recovery key, mode 0600, never
// over an existing file (two jobs racing both read the winner's).
func readHostKey(path string, create bool) ([]byte, error) {
	b, err := os.ReadFile(path) // #nosec G304 -- the operator names the key file
	if errors.Is(err, fs.ErrNotExist) && create {
		return newHostKey(path)
	}
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s does not exist (the agent writes it when it creates a repository; a repository made by hand needs --password-file)", ErrNoHostKey, path)
	}
	if err != nil {
		return nil, fmt.Errorf("host key: %w", err)
	}
	if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("host key %s: mode %04o lets others read it: chmod 600 %s", path, fi.Mode().Perm(), path)
	}
	b = bytes.TrimRight(b, "\r\n")
	if len(b) == 0 {
		return nil, fmt.Errorf("host key %s is empty", path)
	}
	return b, nil
}

func newHostKey(path string) ([]byte, error) {
	rk, err := keyring.NewRecoveryKey()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("host key: %w", err)
	}
	err = atomicfile.WriteNew(path, []byte(rk.String()+"\n"), 0o600)
	clear(rk[:])
	if atomicfile.IsExist(err) {
		return readHostKey(path, false)
	}
	if err != nil {
		return nil, fmt.Errorf("write host key: %w", err)
	}
	return readHostKey(path, false)
}
