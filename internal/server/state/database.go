package state

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/coffer-backup/coffer/internal/atomicfile"
	"github.com/coffer-backup/coffer/internal/pki"
	"github.com/coffer-backup/coffer/internal/serverdb"
)

// DBPasswordFile holds the password of a PostgreSQL database (mode 0600),
// copied there by server init --db-password-file: the password travels
// with the directory (copies of it run the other servers) and never sits
// in config.json, argv or the database URL.
const DBPasswordFile = "db.password"

// maxPasswordFile bounds a password file.
const maxPasswordFile = 4 << 10

// ErrDBPassword: a database password file is missing where one is
// needed, empty, too long, or readable by others.
var ErrDBPassword = errors.New("unusable database password file")

// OpenDB opens the state database of an initialised directory: the
// PostgreSQL database config.json names (with the password of
// DBPasswordFile, if there is one), else the SQLite file D/state.db. Every
// command that uses the database opens it here.
func OpenDB(ctx context.Context, dir string) (*serverdb.Store, error) {
	st, err := LoadSettings(dir)
	if err != nil {
		return nil, err
	}
	return openDatabase(ctx, dir, st.Database)
}

// openDatabase opens dbURL ("" for D/state.db).
func openDatabase(ctx context.Context, dir, dbURL string) (*serverdb.Store, error) {
	if dbURL == "" {
		return serverdb.Open(ctx, filepath.Join(dir, serverdb.DefaultFile))
	}
	pw, err := readDBPassword(filepath.Join(dir, DBPasswordFile), false)
	if err != nil {
		return nil, err
	}
	return serverdb.OpenPostgres(ctx, dbURL, pw)
}

// ReadPasswordFile reads a password from path: its first line, without
// the line end. The file must exist, hold a password and not be readable
// by group or others.
func ReadPasswordFile(path string) (string, error) {
	return readDBPassword(path, true)
}

// readDBPassword reads the password file at path; a missing one is ""
// unless required.
func readDBPassword(path string, required bool) (string, error) {
	f, err := os.Open(path) // #nosec G304 -- the admin's password file
	if errors.Is(err, fs.ErrNotExist) && !required {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrDBPassword, err)
	}
	defer func() { _ = f.Close() }()
	fi, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrDBPassword, err)
	}
	if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("%w: %s is not a regular file", ErrDBPassword, path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return "", fmt.Errorf("%w: %s has mode %04o; run chmod 600 %s", ErrDBPassword, path, perm, path)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxPasswordFile+1))
	if err != nil {
		return "", fmt.Errorf("%w: %s: %w", ErrDBPassword, path, err)
	}
	if len(b) > maxPasswordFile {
		return "", fmt.Errorf("%w: %s is longer than %d bytes", ErrDBPassword, path, maxPasswordFile)
	}
	line, _, _ := bytes.Cut(b, []byte("\n"))
	line = bytes.TrimSuffix(line, []byte("\r"))
	if len(line) == 0 {
		return "", fmt.Errorf("%w: %s: the first line is empty", ErrDBPassword, path)
	}
	return string(line), nil
}

// writeDBPassword keeps password in dir's DBPasswordFile (mode 0600);
// an empty one writes nothing.
func writeDBPassword(dir, password string) error {
	if password == "" {
		return nil
	}
	err := atomicfile.WriteNew(filepath.Join(dir, DBPasswordFile), []byte(password+"\n"), 0o600)
	if atomicfile.IsExist(err) {
		// An interrupted init: the same password is fine, another is not.
		kept, rerr := readDBPassword(filepath.Join(dir, DBPasswordFile), true)
		if rerr == nil && kept == password {
			return nil
		}
		return fmt.Errorf("%w: %s exists with another password", ErrDBPassword, filepath.Join(dir, DBPasswordFile))
	}
	return err
}

// caSetting is the fleet setting that names the CA (its fingerprint, hex)
// of the servers a database belongs to, written by Init.
const caSetting = "server-ca-fingerprint"

// ErrForeignDatabase: the database belongs to servers of another CA.
var ErrForeignDatabase = errors.New("the state database belongs to servers of another CA")

// CheckDatabaseCA records ca as the CA of the servers db belongs to, or
// checks that it is: a database shared by several servers holds one
// fleet, so every server runs from a copy of one state directory (one
// CA); a second server init against the same database, or a server run
// against another fleet's database, is refused with ErrForeignDatabase.
func CheckDatabaseCA(ctx context.Context, db *serverdb.Store, ca *pki.CA) error {
	fp := ca.Fingerprint()
	want := hex.EncodeToString(fp[:])
	got, err := db.FleetSetting(ctx, caSetting)
	if err != nil {
		return err
	}
	switch got {
	case want:
		return nil
	case "":
		return db.SetFleetSetting(ctx, caSetting, want)
	}
	return fmt.Errorf("%w (CA %s, this directory's is %s): run every server from a copy of the first server's state directory, not from another server init",
		ErrForeignDatabase, got, want)
}

// checkDatabaseOptions checks Init's database URL and password.
func checkDatabaseOptions(opts InitOptions) error {
	if opts.Database != "" {
		_, err := serverdb.ParsePostgresURL(opts.Database)
		return err
	}
	if opts.DatabasePassword != "" {
		return fmt.Errorf("%w: a password without a database URL", ErrDBPassword)
	}
	return nil
}
