package replicate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/coffer-backup/coffer/internal/atomicfile"
	"github.com/coffer-backup/coffer/internal/pki"
	"github.com/coffer-backup/coffer/internal/pki/enroll"
	"github.com/coffer-backup/coffer/internal/schedule"
	"github.com/coffer-backup/coffer/internal/serverdb"
	"github.com/coffer-backup/coffer/internal/storage"
	"github.com/coffer-backup/coffer/internal/storage/s3"
	"github.com/coffer-backup/coffer/internal/wire"
)

// DefaultKeepDeleted is how long a target keeps what the primary deleted
// unless told otherwise.
const DefaultKeepDeleted = 30 * 24 * time.Hour

// ErrBusy: a pass of the target is running in another process.
var ErrBusy = errors.New("a replication pass of this target is running")

// Settings are a target's settings, as replicate add takes them.
type Settings struct {
	Name        string
	Location    string   // coffer://HOST:PORT or s3:...
	Clients     []string // empty: every client
	Schedule    string
	Limit       string
	Window      string
	KeepDeleted time.Duration
	// LockDays, for an s3: target, locks each copy in compliance mode for
	// this many days (0: no lock); the bucket must have object lock.
	LockDays int
	// Parallel is how many objects a pass copies at once (0:
	// DefaultParallel).
	Parallel int
	// AlertLag is the lag beyond which the running server raises
	// replication-lag (0: the server's default).
	AlertLag time.Duration
}

// MaxLockDays bounds --lock-days (S3's own limit is 100 years).
const MaxLockDays = 36500

// Check validates the settings, naming the first bad one.
func (s Settings) Check() error {
	if err := wire.ValidateRepo(s.Name); err != nil {
		return fmt.Errorf("target name %q: 1 to 64 of a-z, 0-9, - and _", s.Name)
	}
	if err := checkLocation(s.Location); err != nil {
		return err
	}
	for _, c := range s.Clients {
		if err := wire.ValidateClientName(c); err != nil {
			return fmt.Errorf("--clients: %w", err)
		}
	}
	if s.Schedule != "" {
		if _, err := schedule.Parse(s.Schedule); err != nil {
			return fmt.Errorf("--schedule: %w", err)
		}
	}
	if _, err := ParseLimit(s.Limit); err != nil {
		return fmt.Errorf("--limit: %w", err)
	}
	if _, err := schedule.ParseWindow(s.Window); err != nil {
		return fmt.Errorf("--window: %w", err)
	}
	if s.KeepDeleted < 0 {
		return errors.New("--keep-deleted must not be negative")
	}
	return s.checkMore()
}

func (s Settings) checkMore() error {
	if s.LockDays < 0 || s.LockDays > MaxLockDays {
		return fmt.Errorf("--lock-days: %d is not a number of days from 0 to %d", s.LockDays, MaxLockDays)
	}
	if s.LockDays > 0 && !strings.HasPrefix(s.Location, s3.Scheme+":") {
		return errors.New("--lock-days: only an s3: target has object lock")
	}
	if s.Parallel < 0 || s.Parallel > MaxParallel {
		return fmt.Errorf("--parallel: %d is not from 1 to %d", s.Parallel, MaxParallel)
	}
	if s.AlertLag < 0 {
		return errors.New("--alert-lag must not be negative")
	}
	return nil
}

func checkLocation(location string) error {
	loc, err := storage.ParseLocation(location)
	if err != nil {
		return fmt.Errorf("--to: %w", err)
	}
	switch loc.Scheme {
	case s3.Scheme:
		if _, err := s3.ParseLocation(loc.Rest); err != nil {
			return fmt.Errorf("--to: %w", err)
		}
		return nil
	case "coffer":
		if _, err := ParseCofferTarget(location); err != nil {
			return fmt.Errorf("--to: %w", err)
		}
		return nil
	}
	return fmt.Errorf("--to: %w: %q: a target is coffer://HOST:PORT or s3:https://HOST/BUCKET[/PREFIX]", ErrTarget, location)
}

// ParseKeep reads a keep-deleted duration: Go's syntax ("720h") with an
// optional leading count of days ("30d", "1d12h"); "0" applies deletions
// at the next pass.
func ParseKeep(s string) (time.Duration, error) {
	var d time.Duration
	rest := strings.TrimSpace(s)
	if n, after, ok := strings.Cut(rest, "d"); ok {
		days, err := strconv.Atoi(n)
		if err != nil || days < 0 || days > 36500 || n == "" || n[0] == '+' {
			return 0, fmt.Errorf("%q is not a duration such as 30d, 12h or 1d12h", s)
		}
		d, rest = time.Duration(days)*24*time.Hour, after
	}
	if rest != "" {
		more, err := time.ParseDuration(rest)
		if err != nil || more < 0 || rest[0] == '+' || rest[0] == '-' {
			return 0, fmt.Errorf("%q is not a duration such as 30d, 12h or 1d12h", s)
		}
		if d+more < d {
			return 0, fmt.Errorf("%q is too long", s)
		}
		d += more
	}
	return d, nil
}

// AddOptions are what Add needs beyond the settings.
type AddOptions struct {
	// Token enrolls the primary at a coffer:// target (the target's admin
	// issues it with coffer server token); ignored for s3:.
	Token string
	// CACertFile, for an https S3 endpoint with a private CA, is copied
	// into the target's directory.
	CACertFile string
	// Getenv reads the environment whose AWS_* credentials an s3: target
	// keeps (nil: none are kept; passes use their own environment's).
	Getenv func(string) string
	Now    func() time.Time
}

// AdminDB is the state database as Add, Remove and Status use it.
type AdminDB interface {
	DB
	AddReplicaTarget(ctx context.Context, t serverdb.ReplicaTarget) error
	RemoveReplicaTarget(ctx context.Context, name string) error
	ReplicaTargets(ctx context.Context) ([]serverdb.ReplicaTarget, error)
}

// Add records a new target. For coffer:// it first enrolls the primary
// at the target with the token, writing the identity into
// D/replicate/NAME (the key mode 0600); for s3: it keeps the credentials
// and CA there. A name in use is serverdb.ErrDuplicate, checked before
// the token is spent.
func Add(ctx context.Context, dir string, db AdminDB, s Settings, opts AddOptions) error {
	if err := s.Check(); err != nil {
		return err
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if _, err := db.ReplicaTarget(ctx, s.Name); err == nil {
		return fmt.Errorf("replication target %q: %w", s.Name, serverdb.ErrDuplicate)
	}
	tdir := TargetDir(dir, s.Name)
	for _, d := range []string{filepath.Join(dir, Dir), tdir} {
		if err := os.Mkdir(d, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
			return err
		}
	}
	var err error
	if strings.HasPrefix(s.Location, "coffer:") {
		err = enrollAt(ctx, tdir, s.Location, opts.Token)
	} else {
		err = keepS3(tdir, opts)
	}
	if err == nil && s.LockDays > 0 {
		err = checkLockAt(ctx, tdir, s)
	}
	if err != nil {
		if !strings.HasPrefix(s.Location, "coffer:") {
			// The credentials kept for a target not added go with it.
			_ = os.RemoveAll(tdir)
		}
		return err
	}
	return db.AddReplicaTarget(ctx, serverdb.ReplicaTarget{Name: s.Name, Location: strings.TrimSuffix(s.Location, "/"), Clients: s.Clients,
		Schedule: s.Schedule, RateLimit: s.Limit, Window: s.Window, KeepDeleted: s.KeepDeleted,
		LockDays: s.LockDays, Parallel: s.Parallel, AlertLag: s.AlertLag, Created: opts.Now()})
}

// checkLockAt makes sure the bucket of an s3: target with --lock-days has
// object lock enabled (creating a missing bucket with it).
func checkLockAt(ctx context.Context, tdir string, s Settings) error {
	tgt, err := openTarget(s.Location, tdir, time.Duration(s.LockDays)*24*time.Hour, time.Now)
	if err != nil {
		return err
	}
	return tgt.checkLock(ctx)
}

func enrollAt(ctx context.Context, tdir, location, token string) error {
	host, err := ParseCofferTarget(location)
	if err != nil {
		return err
	}
	if token == "" {
		return errors.New("a coffer:// target needs --token-file: a token the target's admin issued (coffer server token --client NAME)")
	}
	tok, err := pki.ParseToken(strings.TrimSpace(token))
	if err != nil {
		return err
	}
	id, err := enroll.Enroll(ctx, host, tok, enroll.Options{})
	if err != nil {
		return fmt.Errorf("enroll at %s: %w", host, err)
	}
	return pki.WriteIdentity(tdir, id.KeyPEM, id.CertPEM, id.CAPEM)
}

func keepS3(tdir string, opts AddOptions) error {
	if opts.CACertFile != "" {
		if _, err := s3.LoadCAs(opts.CACertFile); err != nil {
			return err
		}
		pem, err := os.ReadFile(opts.CACertFile)
		if err != nil {
			return err
		}
		if err := atomicfile.Write(filepath.Join(tdir, CAFile), pem, 0o600); err != nil {
			return err
		}
	}
	if opts.Getenv == nil || opts.Getenv("AWS_ACCESS_KEY_ID") == "" {
		return nil
	}
	c := s3Credentials{AccessKeyID: opts.Getenv("AWS_ACCESS_KEY_ID"), SecretAccessKey: opts.Getenv("AWS_SECRET_ACCESS_KEY"),
		SessionToken: opts.Getenv("AWS_SESSION_TOKEN"), Region: opts.Getenv("AWS_DEFAULT_REGION")}
	if c.SecretAccessKey == "" {
		return errors.New("AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not")
	}
	b, err := json.Marshal(c) // #nosec G117 -- written to a file of mode 0600, the credentials kept on purpose
	if err != nil {
		return err
	}
	return atomicfile.Write(filepath.Join(tdir, CredentialsFile), b, 0o600)
}

// Remove forgets a target and deletes its directory (identity,
// credentials); what the target holds stays there.
func Remove(ctx context.Context, dir string, db AdminDB, name string) error {
	if err := wire.ValidateRepo(name); err != nil {
		return fmt.Errorf("target name %q: %w", name, err)
	}
	unlock, err := Lock(ctx, dir, name, false)
	if err != nil {
		return err
	}
	defer unlock()
	if err := db.RemoveReplicaTarget(ctx, name); err != nil {
		return err
	}
	return os.RemoveAll(TargetDir(dir, name))
}

// Lock takes the lock of target name's passes. With wait it waits for a
// running pass to end (or ctx); without, a running pass is ErrBusy.
func Lock(ctx context.Context, dir, name string, wait bool) (func(), error) {
	tdir := TargetDir(dir, name)
	if err := os.MkdirAll(tdir, 0o700); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(tdir, LockFile), os.O_RDWR|os.O_CREATE, 0o600) // #nosec G304 -- the state directory
	if err != nil {
		return nil, err
	}
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB) // #nosec G115 -- a file descriptor
		if err == nil {
			return func() { _ = f.Close() }, nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) {
			_ = f.Close()
			return nil, fmt.Errorf("lock target %s: %w", name, err)
		}
		if !wait {
			_ = f.Close()
			return nil, fmt.Errorf("%w: %s", ErrBusy, name)
		}
		select {
		case <-ctx.Done():
			_ = f.Close()
			return nil, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}
