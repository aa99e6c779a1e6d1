// Package state is the storage server's state directory: its layout, its
// one initialisation, the configuration file, the at-rest key and the
// ownership and permission checks run before anything touches it.
package state

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/coffer-backup/coffer/internal/atomicfile"
	"github.com/coffer-backup/coffer/internal/atrest"
	"github.com/coffer-backup/coffer/internal/fleet/policy"
	"github.com/coffer-backup/coffer/internal/pki"
	"github.com/coffer-backup/coffer/internal/server/objstore"
	"golang.org/x/sys/unix"
)

// Layout of a state directory (made by Init).
const (
	ConfigFile = "config.json" // written last: its presence marks an initialised directory
	KeyFile    = "at-rest.key" // the at-rest key: 32 random bytes, mode 0600
	ObjectsDir = "objects"     // objects/<client>/<repo>: a local repository layout, sealed
	TempDir    = "tmp"         // scratch space; emptied at start
	LockFile   = "server.lock" // held by the running server
)

// DefaultListen is the listen address of a new configuration: every
// address, the coffer port.
const DefaultListen = ":7443"

// DefaultClientCertTTL is the lifetime of client certificates unless the
// configuration says otherwise; clients renew them after two thirds of it.
const DefaultClientCertTTL = 90 * 24 * time.Hour

// Bounds of client_cert_ttl.
const (
	MinClientCertTTL = time.Minute
	MaxClientCertTTL = 397 * 24 * time.Hour
)

// Sentinel errors of the state directory.
var (
	// ErrNotInitialised: the state directory has no configuration or no
	// at-rest key (run coffer server init).
	ErrNotInitialised = errors.New("server state directory is not initialised")
	// ErrLocked: another server process runs on the state directory.
	ErrLocked = errors.New("state directory is in use by another server")
	// ErrConfig: the configuration file does not parse or is out of bounds.
	ErrConfig = errors.New("invalid server configuration")
	// ErrInsecureFile: a secret file (the at-rest key, a private key, the
	// database) is accessible to group or others, or a file or directory of
	// the state tree is writable by them or a symbolic link; the server
	// refuses to start.
	ErrInsecureFile = errors.New("insecure state directory")
	// ErrAlreadyInitialised: server init found a configured directory.
	ErrAlreadyInitialised = errors.New("server state directory is already initialised")
	// ErrWrongUser: the state directory belongs to another user, whose
	// files this process would create with the wrong owner.
	ErrWrongUser = errors.New("state directory belongs to another user")
)

// InitOptions configure Init.
type InitOptions struct {
	// Names are the server certificate's DNS names and IP addresses
	// (default pki.DefaultServerNames).
	Names []string
	// Listen is the configured listen address (default DefaultListen).
	Listen string
	// Storage is where the objects go (FileConfig.Storage; "": the state
	// directory's objects/), and StorageCA the PEM certificates that
	// verify its endpoint besides the system's, written to
	// objstore.CAFile (nil: none).
	Storage   string
	StorageCA []byte
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Database is a PostgreSQL URL for the state database (checked by
	// serverdb.ParsePostgresURL: no password in it); empty: the SQLite
	// file state.db.
	Database string
	// DatabasePassword is the database's password, kept in
	// DBPasswordFile; empty: none there (PGPASSWORD or libpq's password
	// file may still give one).
	DatabasePassword string
}

// InitResult describes a new state directory.
type InitResult struct {
	CAFingerprint [32]byte // pki.FormatFingerprint prints it
	ServerNames   []string
	ServerExpiry  time.Time
	// PolicyKeyID is the ID of the policy signing key (policy.KeyID).
	PolicyKeyID string
	// AdminDir is the first administrator's identity directory, or empty
	// when the fleet had an administrator already (an interrupted init).
	AdminDir string
}

// Init creates a server state directory (mode 0700): the objects,
// temporary and audit directories, the at-rest key, the CA, the server's
// key and certificate, the audit key (audit.key, audit.pub), the policy
// signing key (policy.key, policy.pub), the
// database, the first administrator's identity (admin/, EnsureAdmin) and,
// last, the configuration file, which marks
// the directory as initialised. A directory with a configuration file is
// refused (ErrAlreadyInitialised); an interrupted initialisation is
// completed, keeping what exists: no key is ever overwritten.
func Init(ctx context.Context, dir string, opts InitOptions) (*InitResult, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Listen == "" {
		opts.Listen = DefaultListen
	}
	names := opts.Names
	if len(names) == 0 {
		names = pki.DefaultServerNames
	}
	if _, err := os.Lstat(filepath.Join(dir, ConfigFile)); err == nil {
		return nil, fmt.Errorf("%w: %s exists", ErrAlreadyInitialised, filepath.Join(dir, ConfigFile))
	}
	if err := checkDatabaseOptions(opts); err != nil {
		return nil, err
	}
	if err := initLayout(dir); err != nil {
		return nil, err
	}
	if err := writeDBPassword(dir, opts.DatabasePassword); err != nil {
		return nil, err
	}
	now := opts.Now()
	ca, err := pki.LoadCA(dir)
	if errors.Is(err, fs.ErrNotExist) {
		if ca, err = pki.NewCA("coffer server CA", now); err == nil {
			err = ca.SaveFiles(dir)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("init CA: %w", err)
	}
	kp, err := pki.LoadKeyPair(dir, pki.ServerCertFile, pki.ServerKeyFile)
	if errors.Is(err, fs.ErrNotExist) {
		if kp, err = ca.IssueServer(names, now); err == nil {
			err = kp.SaveFiles(dir, pki.ServerCertFile, pki.ServerKeyFile)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("init server certificate: %w", err)
	}
	if _, err := EnsureAuditKey(dir); err != nil {
		return nil, err
	}
	res := &InitResult{CAFingerprint: ca.Fingerprint(), ServerExpiry: kp.Cert.NotAfter}
	res.ServerNames = append(res.ServerNames, kp.Cert.DNSNames...)
	for _, ip := range kp.Cert.IPAddresses {
		res.ServerNames = append(res.ServerNames, ip.String())
	}
	if err := initFleet(ctx, dir, opts.Database, ca, ServerAddr(names, opts.Listen), now, res); err != nil {
		return nil, err
	}
	if opts.StorageCA != nil {
		if err := atomicfile.Write(filepath.Join(dir, objstore.CAFile), opts.StorageCA, 0o600); err != nil {
			return nil, fmt.Errorf("init object storage CA: %w", err)
		}
	}
	if err := writeConfig(dir, opts); err != nil {
		return nil, err
	}
	return res, nil
}

// writeConfig writes the configuration file of a new directory, checked
// first by ParseConfig.
func writeConfig(dir string, opts InitOptions) error {
	cfg, err := json.MarshalIndent(FileConfig{Version: 1, Listen: opts.Listen, ClientCertTTL: DefaultClientCertTTL.String(), TLS: json.RawMessage("{}"),
		Storage: opts.Storage, Database: opts.Database}, "", "  ")
	if err != nil {
		return fmt.Errorf("init configuration: %w", err)
	}
	if _, err := ParseConfig(cfg); err != nil {
		return fmt.Errorf("init configuration: %w", err)
	}
	if err := atomicfile.WriteNew(filepath.Join(dir, ConfigFile), append(cfg, '\n'), 0o600); err != nil {
		return fmt.Errorf("init configuration: %w", err)
	}
	return nil
}

// initFleet makes the policy key, the database and the first
// administrator's identity, and notes them in res.
func initFleet(ctx context.Context, dir, dbURL string, ca *pki.CA, server string, now time.Time, res *InitResult) error {
	pkey, _, err := EnsurePolicyKey(dir)
	if err != nil {
		return fmt.Errorf("init policy key: %w", err)
	}
	pub := pkey.Public().(ed25519.PublicKey)
	res.PolicyKeyID = policy.KeyID(pub)
	db, err := openDatabase(ctx, dir, dbURL)
	if err != nil {
		return err
	}
	if err := CheckDatabaseCA(ctx, db, ca); err != nil {
		_ = db.Close()
		return err
	}
	made, err := EnsureAdmin(ctx, dir, db, ca, AdminOptions{Server: server, PolicyPub: pub, TTL: DefaultClientCertTTL, Now: now})
	if cerr := db.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("init database: %w", cerr)
	}
	if made {
		res.AdminDir = filepath.Join(dir, AdminDir)
	}
	return err
}

// initLayout makes the directory (mode 0700), its subdirectories and an
// at-rest key, keeping a key that exists if it is sound.
func initLayout(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("init server directory: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil { // #nosec G302 -- a directory: 0700 is owner-only
		return fmt.Errorf("init server directory: %w", err)
	}
	if err := MakeDirs(dir); err != nil {
		return err
	}
	key := make([]byte, atrest.KeySize)
	if _, err := rand.Read(key); err != nil {
		return fmt.Errorf("create at-rest key: %w", err)
	}
	err := atomicfile.WriteNew(filepath.Join(dir, KeyFile), key, 0o600)
	if atomicfile.IsExist(err) {
		_, err = LoadKey(dir)
		return err
	}
	if err != nil {
		return fmt.Errorf("create at-rest key: %w", err)
	}
	return nil
}

// MakeDirs makes the objects, temporary and audit directories if they are
// missing.
func MakeDirs(dir string) error {
	for _, sub := range []string{ObjectsDir, TempDir, AuditDir} {
		if err := os.Mkdir(filepath.Join(dir, sub), 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("server directory: %w", err)
		}
	}
	return nil
}

// LoadKey reads the at-rest key of dir: ErrNotInitialised if there is
// none, ErrInsecureFile if group or others may access it.
func LoadKey(dir string) (*atrest.Key, error) {
	path := filepath.Join(dir, KeyFile)
	f, err := os.Open(path) // #nosec G304 -- the admin's state directory
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: no %s in %s (run coffer server init)", ErrNotInitialised, KeyFile, dir)
	}
	if err != nil {
		return nil, fmt.Errorf("read at-rest key: %w", err)
	}
	defer func() { _ = f.Close() }()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("read at-rest key: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("read at-rest key %s: not a regular file", path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("%w: %s has mode %04o; run chmod 600 %s", ErrInsecureFile, path, perm, path)
	}
	var key atrest.Key
	if _, err := io.ReadFull(f, key[:]); err != nil {
		return nil, fmt.Errorf("read at-rest key %s: %w", path, err)
	}
	if n, _ := f.Read(make([]byte, 1)); n != 0 {
		return nil, fmt.Errorf("read at-rest key %s: longer than %d bytes", path, atrest.KeySize)
	}
	return &key, nil
}

// Lock takes an exclusive advisory lock on the state directory, so no
// second server runs on it (ErrLocked); closing the file releases it.
func Lock(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, LockFile), os.O_RDWR|os.O_CREATE, 0o600) // #nosec G304 -- the admin's state directory
	if err != nil {
		return nil, fmt.Errorf("lock server directory: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil { // #nosec G115 -- a file descriptor
		_ = f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w: %s", ErrLocked, dir)
		}
		return nil, fmt.Errorf("lock server directory: %w", err)
	}
	return f, nil
}
