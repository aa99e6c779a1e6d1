package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/coffer-backup/coffer/internal/atomicfile"
	"github.com/coffer-backup/coffer/internal/pki"
	"github.com/coffer-backup/coffer/internal/serverdb"
	"github.com/coffer-backup/coffer/internal/tlspolicy"
	"golang.org/x/sys/unix"
)

// ConfigFile is the configuration file in the state directory.
const ConfigFile = "config.json"

// DefaultListen is the listen address of a new configuration: every
// address, the coffer port.
const DefaultListen = ":7443"

// Bounds of client_cert_ttl.
const (
	MinClientCertTTL = time.Minute
	MaxClientCertTTL = 397 * 24 * time.Hour
)

// Sentinel errors of the state directory.
var (
	// ErrConfig: the configuration file does not parse or is out of bounds.
	ErrConfig = errors.New("invalid server configuration")
	// ErrInsecureFile: a secret file (or the directory) is accessible to
	// group or others; the server refuses to start.
	ErrInsecureFile = errors.New("secret file is accessible to group or others")
	// ErrAlreadyInitialised: server init found a configured directory.
	ErrAlreadyInitialised = errors.New("server state directory is already initialised")
	// ErrWrongUser: the state directory belongs to another user, whose
	// files this process would create with the wrong owner.
	ErrWrongUser = errors.New("state directory belongs to another user")
)

// FileConfig is the JSON configuration file of a state directory. Unknown
// fields are refused.
type FileConfig struct {
	Version int `json:"version"` // 1
	// Listen is the address `server run` listens on unless --listen is given.
	Listen string `json:"listen"`
	// ClientCertTTL is the lifetime of issued client certificates, a Go
	// duration ("2160h"); empty means DefaultClientCertTTL.
	ClientCertTTL string `json:"client_cert_ttl,omitempty"`
	// TLS may tighten the TLS policy (docs/pki.md §4), never loosen it.
	TLS json.RawMessage `json:"tls,omitempty"`
}

// Settings is a parsed, validated configuration.
type Settings struct {
	Listen        string
	ClientCertTTL time.Duration
	Policy        tlspolicy.Policy
}

// maxConfigFile bounds the configuration file.
const maxConfigFile = 64 << 10

// ParseConfig parses a configuration file strictly. A "tls" section that
// would loosen the policy is refused with an error wrapping
// tlspolicy.ErrLooserThanPolicy that names the setting; other errors wrap
// ErrConfig.
func ParseConfig(b []byte) (Settings, error) {
	if len(b) > maxConfigFile {
		return Settings{}, fmt.Errorf("%w: larger than %d bytes", ErrConfig, maxConfigFile)
	}
	if t := bytes.TrimSpace(b); len(t) == 0 || t[0] != '{' {
		return Settings{}, fmt.Errorf("%w: want a JSON object", ErrConfig)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var fc FileConfig
	if err := dec.Decode(&fc); err != nil {
		return Settings{}, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return Settings{}, fmt.Errorf("%w: data after the JSON object", ErrConfig)
	}
	if fc.Version != 1 {
		return Settings{}, fmt.Errorf("%w: version %d, this coffer knows 1", ErrConfig, fc.Version)
	}
	st := Settings{Listen: fc.Listen, ClientCertTTL: DefaultClientCertTTL}
	if st.Listen == "" {
		return Settings{}, fmt.Errorf("%w: listen is empty", ErrConfig)
	}
	if fc.ClientCertTTL != "" {
		d, err := time.ParseDuration(fc.ClientCertTTL)
		if err != nil {
			return Settings{}, fmt.Errorf("%w: client_cert_ttl: %w", ErrConfig, err)
		}
		if d < MinClientCertTTL || d > MaxClientCertTTL {
			return Settings{}, fmt.Errorf("%w: client_cert_ttl %v: must be between %v and %v", ErrConfig, d, MinClientCertTTL, MaxClientCertTTL)
		}
		st.ClientCertTTL = d
	}
	tlsSection := fc.TLS
	if bytes.Equal(bytes.TrimSpace(tlsSection), []byte("null")) {
		tlsSection = nil
	}
	p, err := tlspolicy.ParseConfig(tlsSection)
	if err != nil {
		return Settings{}, fmt.Errorf("tls section: %w", err)
	}
	st.Policy = p
	return st, nil
}

// LoadSettings reads and parses the configuration file of dir.
func LoadSettings(dir string) (Settings, error) {
	path := filepath.Join(dir, ConfigFile)
	f, err := os.Open(path) // #nosec G304 -- the admin's state directory
	if errors.Is(err, fs.ErrNotExist) {
		return Settings{}, fmt.Errorf("%w: no %s (run coffer server init --dir %s)", ErrNotInitialised, path, dir)
	}
	if err != nil {
		return Settings{}, fmt.Errorf("read configuration: %w", err)
	}
	defer func() { _ = f.Close() }()
	b, err := io.ReadAll(io.LimitReader(f, maxConfigFile+1))
	if err != nil {
		return Settings{}, fmt.Errorf("read configuration %s: %w", path, err)
	}
	st, err := ParseConfig(b)
	if err != nil {
		return Settings{}, fmt.Errorf("configuration %s: %w", path, err)
	}
	return st, nil
}

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

// InitOptions configure InitState.
type InitOptions struct {
	// Names are the server certificate's DNS names and IP addresses
	// (default pki.DefaultServerNames).
	Names []string
	// Listen is the configured listen address (default DefaultListen).
	Listen string
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// InitResult describes a new state directory.
type InitResult struct {
	CAFingerprint [32]byte
	ServerNames   []string
	ServerExpiry  time.Time
}

// InitState creates a server state directory (mode 0700): the at-rest key,
// the CA, the server's key and certificate, the database and, last, the
// configuration file, which marks the directory as initialised. A
// directory with a configuration file is refused (ErrAlreadyInitialised);
// an interrupted initialisation is completed, keeping what exists.
func InitState(ctx context.Context, dir string, opts InitOptions) (*InitResult, error) {
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
	if err := InitDir(dir); err != nil {
		return nil, err
	}
	if err := os.Chmod(dir, 0o700); err != nil { // #nosec G302 -- a directory: 0700 is owner-only
		return nil, fmt.Errorf("init server directory: %w", err)
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
	db, err := serverdb.Open(ctx, filepath.Join(dir, serverdb.DefaultFile))
	if err != nil {
		return nil, err
	}
	if err := db.Close(); err != nil {
		return nil, fmt.Errorf("init database: %w", err)
	}
	cfg, err := json.MarshalIndent(FileConfig{Version: 1, Listen: opts.Listen, ClientCertTTL: DefaultClientCertTTL.String(), TLS: json.RawMessage("{}")}, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("init configuration: %w", err)
	}
	if _, err := ParseConfig(cfg); err != nil {
		return nil, fmt.Errorf("init configuration: %w", err)
	}
	if err := atomicfile.WriteNew(filepath.Join(dir, ConfigFile), append(cfg, '\n'), 0o600); err != nil {
		return nil, fmt.Errorf("init configuration: %w", err)
	}
	res := &InitResult{CAFingerprint: ca.Fingerprint(), ServerExpiry: kp.Cert.NotAfter}
	res.ServerNames = append(res.ServerNames, kp.Cert.DNSNames...)
	for _, ip := range kp.Cert.IPAddresses {
		res.ServerNames = append(res.ServerNames, ip.String())
	}
	return res, nil
}

// FormatFingerprint prints a CA fingerprint as colon-separated hex pairs.
func FormatFingerprint(fp [32]byte) string {
	var b strings.Builder
	for i, c := range fp {
		if i > 0 {
			b.WriteByte(':')
		}
		fmt.Fprintf(&b, "%02X", c)
	}
	return b.String()
}
