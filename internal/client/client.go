// Package client opens coffer repositories and runs backup, restore, check,
// forget and prune on them: what the CLI and a long-running agent share.
package client

import (
	"context"
	"errors"
	"fmt"

	"github.com/coffer-backup/coffer/internal/keyring"
	"github.com/coffer-backup/coffer/internal/repository"
	"github.com/coffer-backup/coffer/internal/storage"
)

// Credential is where the passphrase (or recovery key, or escrow key)
// comes from.
type Credential struct {
	// Secret returns the secret; the caller clears it after use.
	Secret func(ctx context.Context) ([]byte, error)
	// Escrow, if not nil, returns an escrow identity; Open then tries only
	// the repository's escrow slots with it (no Argon2id) and ignores
	// Secret.
	Escrow func(ctx context.Context) (*keyring.EscrowIdentity, error)
	// Source names where the secret was read from, for error messages
	// ("COFFER_PASSWORD_FILE=/etc/coffer/pass"); "" says nothing.
	Source string
}

// Options say which repository to open and how. Only Location and
// Credential are required.
type Options struct {
	// Location is a path, local:PATH, coffer://HOST:PORT/REPO or
	// s3:https://HOST/BUCKET[/PREFIX].
	Location string
	// Credential unlocks the repository.
	Credential Credential
	// StateDir keeps what this client has seen of each repository, for
	// the rollback and key-term checks; "" turns both checks off.
	StateDir string
	// IdentityDir holds the enrolled client key and certificates used for
	// coffer:// locations.
	IdentityDir string
	// CACertFile names a PEM file of CA certificates trusted, besides the
	// system's, for s3:https:// endpoints; "": the system's only.
	CACertFile string
	// LimitUpload and LimitDownload are the most bytes per second this
	// client sends to and reads from the repository's storage (0:
	// unlimited); see internal/storage/ratelimit.
	LimitUpload, LimitDownload int64
	// BeforeKDF runs before each Argon2id derivation (nil: nothing). A
	// program's main may pass keyring.PrepareWorkArea.
	BeforeKDF keyring.KDFHook
	// KDFMaxMemory is the most Argon2id memory, in bytes, a key slot may
	// ask for before it is tried (0: keyring.DefaultUnlockMaxMemoryKiB).
	// Slots planted with costlier settings are not run unless raised.
	KDFMaxMemory int64
	// AfterUnlock runs once the repository is unlocked (nil: nothing).
	// A program's main may collect the key derivation's garbage there;
	// the library never tunes the process itself.
	AfterUnlock func()
	// Warnf reports problems that do not stop the operation (nil: dropped).
	Warnf func(format string, a ...any)
	// Infof reports events worth a line, such as a renewed certificate
	// (nil: dropped).
	Infof func(format string, a ...any)
}

func (o *Options) warnf(format string, a ...any) {
	if o.Warnf != nil {
		o.Warnf(format, a...)
	}
}

func (o *Options) infof(format string, a ...any) {
	if o.Infof != nil {
		o.Infof(format, a...)
	}
}

// Client is an open, unlocked repository. Its methods may be called for
// the life of a process; Close releases the storage and every cache.
type Client struct {
	opts Options
	st   storage.Storage
	repo *repository.Repository
}

// Open opens and unlocks the repository at o.Location, then checks its key
// term against o.StateDir: a keyring older than one this client saw hides a
// rotation and is refused (repository.ErrRolledBack). A wrong secret is
// keyring.ErrWrongPassword, naming o.Credential.Source.
func Open(ctx context.Context, o Options) (*Client, error) {
	st, err := openStorage(ctx, &o, false)
	if err != nil {
		return nil, err
	}
	c, err := open(ctx, o, st)
	if err != nil {
		_ = st.Close()
		return nil, err
	}
	return c, nil
}

func open(ctx context.Context, o Options, st storage.Storage) (*Client, error) {
	oo := repository.OpenOptions{BeforeKDF: o.BeforeKDF, StateDir: o.StateDir,
		KDFMaxMemoryKiB: uint32(min(max(o.KDFMaxMemory, 0)>>10, keyring.MaxKDFMemoryKiB))} // #nosec G115 -- clamped to the parser's limit
	var pass []byte
	var err error
	if o.Credential.Escrow != nil {
		oo.Escrow, err = o.Credential.Escrow(ctx)
	} else {
		pass, err = secret(ctx, o.Credential)
	}
	if err != nil {
		return nil, err
	}
	r, err := repository.OpenWith(ctx, st, pass, oo)
	clear(pass)
	if err != nil {
		return nil, explainSecret(err, o.Credential)
	}
	if o.StateDir != "" {
		if err := r.CheckTerm(o.StateDir); err != nil {
			return nil, err
		}
	}
	return newClient(o, st, r), nil
}

func newClient(o Options, st storage.Storage, r *repository.Repository) *Client {
	r.SetWarnf(o.warnf)
	if storage.PropertiesOf(st).Remote {
		// A request costs far more than its bytes: read whole packs.
		r.UsePackCache(3)
	}
	if o.AfterUnlock != nil {
		o.AfterUnlock()
	}
	return &Client{opts: o, st: st, repo: r}
}

func secret(ctx context.Context, cr Credential) ([]byte, error) {
	if cr.Secret == nil {
		return nil, errors.New("no passphrase source given")
	}
	return cr.Secret(ctx)
}

// explainSecret names where a wrong secret was read from.
func explainSecret(err error, cr Credential) error {
	if cr.Source != "" && errors.Is(err, keyring.ErrWrongPassword) {
		return fmt.Errorf("%w (read from %s)", err, cr.Source)
	}
	return err
}

// InitOptions create a repository. Passphrase is required; zero values of
// the rest are repository.Init's defaults.
type InitOptions = repository.InitOptions

// ErrRepositoryExists: Init found a repository at the location; it never
// touches one.
var ErrRepositoryExists = errors.New("a coffer repository already exists there")

// Exists reports whether a repository can be opened at o.Location (its
// storage; no secret is needed). Init uses it to tell an existing
// repository from other reasons it cannot create one.
func Exists(ctx context.Context, o Options) bool {
	st, err := openStorage(ctx, &o, false)
	if err != nil {
		return false
	}
	_ = st.Close()
	return true
}

// Init creates a repository at o.Location and returns it open, with the
// recovery key when init asked for one. Passphrase comes from ro; the
// Credential of o is not used.
func Init(ctx context.Context, o Options, ro InitOptions) (*Client, *keyring.RecoveryKey, error) {
	st, err := openStorage(ctx, &o, true)
	if err != nil {
		if ctx.Err() == nil && Exists(ctx, o) {
			return nil, nil, fmt.Errorf("create repository %s: %w", o.Location, ErrRepositoryExists)
		}
		return nil, nil, err
	}
	if ro.BeforeKDF == nil {
		ro.BeforeKDF = o.BeforeKDF
	}
	r, rk, err := repository.Init(ctx, st, ro)
	if err != nil {
		_ = st.Close()
		return nil, nil, err
	}
	return newClient(o, st, r), rk, nil
}

// Repository is the unlocked repository, for operations this package does
// not wrap (listing objects, key slots). It is valid until Close.
func (c *Client) Repository() *repository.Repository { return c.repo }

// Location is the repository's location as given to Open.
func (c *Client) Location() string { return c.opts.Location }

// Close releases the storage and every cache. The Client must not be used
// afterwards.
func (c *Client) Close() error {
	if c.repo == nil {
		return nil
	}
	c.repo.UsePackCache(0)
	c.repo = nil
	return c.st.Close()
}

// Lock takes a repository lock for op (shared unless exclusive); the caller
// unlocks it.
func (c *Client) Lock(ctx context.Context, op string, exclusive bool) (*repository.HeldLock, error) {
	return c.repo.Lock(ctx, op, exclusive)
}

// LoadSnapshots loads every readable snapshot and runs the rollback check
// against what this client has seen before, then records what it sees now.
// Unreadable snapshots are reported through Warnf; one this client has
// seen before is a rollback unless a forget record covers it (issue 10,
// item 1), so "latest" never falls back to an older snapshot. Unreadable
// snapshots are not recorded as seen.
func (c *Client) LoadSnapshots(ctx context.Context) ([]*repository.Snapshot, error) {
	snaps, bad, err := c.repo.LoadSnapshots(ctx)
	if err != nil {
		return nil, err
	}
	if c.opts.StateDir != "" {
		ids := make([]repository.ID, 0, len(snaps))
		for _, s := range snaps {
			ids = append(ids, s.ID)
		}
		if err := c.repo.CheckSeen(ctx, c.opts.StateDir, ids, bad); err != nil {
			return nil, err
		}
		if err := c.repo.RecordSeen(c.opts.StateDir, ids); err != nil {
			c.opts.warnf("cannot record seen snapshots: %v", err)
		}
	}
	for _, b := range bad {
		c.opts.warnf("snapshot %s cannot be read: %v", b.ID.Short(), b.Err)
	}
	return snaps, nil
}

// recordSnapshot adds a snapshot this client just wrote to its seen set.
func (c *Client) recordSnapshot(ctx context.Context, id repository.ID) {
	if c.opts.StateDir == "" {
		return
	}
	snaps, _, err := c.repo.LoadSnapshots(ctx)
	if err != nil {
		return
	}
	ids := []repository.ID{id}
	for _, s := range snaps {
		ids = append(ids, s.ID)
	}
	if err := c.repo.RecordSeen(c.opts.StateDir, ids); err != nil {
		c.opts.warnf("cannot record seen snapshots: %v", err)
	}
}

// RecordTerm records the repository's newest key term as seen (after a
// rotation by this client).
func (c *Client) RecordTerm() error {
	if c.opts.StateDir == "" {
		return nil
	}
	return c.repo.RecordTerm(c.opts.StateDir)
}
