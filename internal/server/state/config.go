package state

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/coffer-backup/coffer/internal/server/objstore"
	"github.com/coffer-backup/coffer/internal/serverdb"
	"github.com/coffer-backup/coffer/internal/tlspolicy"
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
	// Storage is where the objects are kept: empty for the state
	// directory's objects/, or an S3 location
	// "s3:http(s)://HOST[:PORT]/BUCKET[/PREFIX]" (credentials come from
	// the environment, never from this file).
	Storage string `json:"storage,omitempty"`
	// Database is the PostgreSQL URL of the state database
	// (postgres://USER@HOST[:PORT]/DATABASE, no password: that is in
	// DBPasswordFile); empty means the SQLite file state.db.
	Database string `json:"database,omitempty"`
}

// Settings is a parsed, validated configuration.
type Settings struct {
	Listen        string
	ClientCertTTL time.Duration
	Policy        tlspolicy.Policy
	Storage       string // FileConfig.Storage, checked
	Database      string // a checked PostgreSQL URL, or "" for state.db
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
	st := Settings{Listen: fc.Listen, ClientCertTTL: DefaultClientCertTTL, Storage: fc.Storage, Database: fc.Database}
	if st.Listen == "" {
		return Settings{}, fmt.Errorf("%w: listen is empty", ErrConfig)
	}
	if st.Database != "" {
		if _, err := serverdb.ParsePostgresURL(st.Database); err != nil {
			return Settings{}, fmt.Errorf("%w: database: %w", ErrConfig, err)
		}
	}
	if fc.Storage != "" {
		if _, err := objstore.ParseLocation(fc.Storage); err != nil {
			return Settings{}, fmt.Errorf("%w: storage: %w", ErrConfig, err)
		}
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
