package replicate

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/coffer-backup/coffer/internal/pki/enroll"
	"github.com/coffer-backup/coffer/internal/storage"
	"github.com/coffer-backup/coffer/internal/storage/remote"
	"github.com/coffer-backup/coffer/internal/storage/retry"
	"github.com/coffer-backup/coffer/internal/storage/s3"
	"github.com/coffer-backup/coffer/internal/tlspolicy"
	"github.com/coffer-backup/coffer/internal/wire"
)

// Files of a target's directory, D/replicate/NAME.
const (
	// CredentialsFile holds the S3 credentials taken from the environment
	// of replicate add (mode 0600); without it, passes use their own
	// environment's.
	CredentialsFile = "s3-credentials.json"
	// CAFile holds the CA certificates an https S3 endpoint is trusted with.
	CAFile = "s3-ca.pem"
	// LockFile is held while a pass runs.
	LockFile = "pass.lock"
)

// s3Credentials is CredentialsFile's content.
type s3Credentials struct {
	AccessKeyID     string `json:"access_key_id"`
	SecretAccessKey string `json:"secret_access_key"`
	SessionToken    string `json:"session_token,omitempty"`
	Region          string `json:"region,omitempty"`
}

// target is where a pass copies to.
type target interface {
	// open returns the target's copy of a repository, made first with
	// create; without create, a missing copy is storage.ErrNoRepository.
	open(ctx context.Context, k RepoKey, create bool) (targetRepo, error)
	// where names the copy of k, for messages.
	where(k RepoKey) string
	// checkLock makes sure the target can lock what it stores (an S3
	// bucket with object lock enabled, made so when missing).
	checkLock(ctx context.Context) error
}

// targetRepo is one repository at the target.
type targetRepo interface {
	// list reports every object of kind with its size and the target's
	// tag ("" when the listing carries none).
	list(ctx context.Context, kind storage.Kind, fn func(name string, size int64, tag string) error) error
	// save stores data under h, paced by th (nil: unpaced).
	save(ctx context.Context, h storage.Handle, data []byte, th *Throttle) error
	// stat returns the size, tag and retention of h as the target
	// reports them.
	stat(ctx context.Context, h storage.Handle) (stat, error)
	// retain extends h's object-lock retention to until.
	retain(ctx context.Context, h storage.Handle, until time.Time) error
	// expect returns the tag the target must report for content whose
	// SHA-256 is sha; data returns the content when the tag needs it.
	expect(sha string, data func() ([]byte, error)) (string, error)
	load(ctx context.Context, h storage.Handle) ([]byte, error)
	remove(ctx context.Context, h storage.Handle) error
	close() error
}

// openTarget returns the target at location, with what its directory
// holds (an identity for coffer://, credentials for s3:). With lockFor,
// an S3 target locks each object it saves until now()+lockFor.
func openTarget(location, dir string, lockFor time.Duration, now func() time.Time) (target, error) {
	loc, err := storage.ParseLocation(location)
	if err != nil {
		return nil, err
	}
	switch loc.Scheme {
	case s3.Scheme:
		return &s3Target{base: strings.TrimSuffix(loc.Rest, "/"), dir: dir, lockFor: lockFor, now: now}, nil
	case remote.Scheme:
		host, err := ParseCofferTarget(location)
		if err != nil {
			return nil, err
		}
		return &cofferTarget{host: host, dir: dir}, nil
	}
	return nil, fmt.Errorf("%w: %q: a target is coffer://HOST:PORT or an s3: location", ErrTarget, location)
}

// ErrTarget is wrapped by errors of a target location.
var ErrTarget = errors.New("invalid replication target")

// ParseCofferTarget reads coffer://HOST[:PORT] (no repository: the
// primary chooses the names) and returns HOST:PORT.
func ParseCofferTarget(location string) (string, error) {
	rest, ok := strings.CutPrefix(location, remote.Scheme+"://")
	rest = strings.TrimSuffix(rest, "/")
	if !ok || rest == "" || strings.ContainsAny(rest, "/?#@") {
		return "", fmt.Errorf("%w: %q: a coffer:// target is coffer://HOST[:PORT], without a repository (the primary names them CLIENT--REPO)", ErrTarget, location)
	}
	host, _, err := remote.ParseURL(remote.Scheme + "://" + rest + "/x")
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrTarget, err)
	}
	return host, nil
}

// CofferRepoName is the repository name at a coffer:// target of a
// client's repository: CLIENT--REPO, with a client name's dots as
// underscores (repository names have no dots). It fails for a name longer
// than a repository name may be.
func CofferRepoName(k RepoKey) (string, error) {
	name := strings.ReplaceAll(k.Client, ".", "_") + "--" + k.Repo
	if err := wire.ValidateRepo(name); err != nil {
		return "", fmt.Errorf("%s cannot be named at a coffer:// target (%q): %w", k, name, err)
	}
	return name, nil
}

// s3Target writes each repository in the repository layout under
// BASE/CLIENT/REPO.
type s3Target struct {
	base    string // what follows "s3:", without a trailing '/'
	dir     string
	lockFor time.Duration
	now     func() time.Time
}

func (t *s3Target) where(k RepoKey) string { return "s3:" + t.base + "/" + k.Client + "/" + k.Repo }

func (t *s3Target) checkLock(ctx context.Context) error {
	cfg, err := t.configAt(t.base)
	if err != nil {
		return err
	}
	if err := s3.CheckObjectLock(ctx, cfg, true); err != nil {
		return fmt.Errorf("--lock-days: %w", err)
	}
	return nil
}

func (t *s3Target) config(k RepoKey) (s3.Config, error) {
	cfg, err := t.configAt(strings.TrimPrefix(t.where(k), "s3:"))
	if err == nil && t.lockFor > 0 {
		cfg.RetainUntil = func() time.Time { return t.now().Add(t.lockFor) }
	}
	return cfg, err
}

// configAt is the configuration of location (what follows "s3:") with
// the target's credentials and CA.
func (t *s3Target) configAt(location string) (s3.Config, error) {
	caFile := filepath.Join(t.dir, CAFile)
	if _, err := os.Stat(caFile); err != nil {
		caFile = ""
	}
	cfg, err := s3.ConfigFromEnv(location, os.Getenv, caFile)
	if err != nil {
		return cfg, err
	}
	b, err := os.ReadFile(filepath.Join(t.dir, CredentialsFile)) // #nosec G304 -- the state directory
	if errors.Is(err, fs.ErrNotExist) {
		return cfg, nil
	}
	if err != nil {
		return cfg, fmt.Errorf("S3 credentials: %w", err)
	}
	var c s3Credentials
	if err := json.Unmarshal(b, &c); err != nil {
		return cfg, fmt.Errorf("S3 credentials in %s: %w", filepath.Join(t.dir, CredentialsFile), err)
	}
	cfg.Creds = credentials.NewStaticV4(c.AccessKeyID, c.SecretAccessKey, c.SessionToken)
	if c.Region != "" {
		cfg.Region = c.Region
	}
	return cfg, nil
}

func (t *s3Target) open(ctx context.Context, k RepoKey, create bool) (targetRepo, error) {
	cfg, err := t.config(k)
	if err != nil {
		return nil, err
	}
	st, err := s3.Open(ctx, cfg)
	if errors.Is(err, storage.ErrNoRepository) && create {
		st, err = s3.Create(ctx, cfg)
	}
	if err != nil {
		return nil, err
	}
	return &s3Repo{raw: st, st: retry.New(st, retry.Options{})}, nil
}

type s3Repo struct {
	raw *s3.S3
	st  storage.Storage
}

func (r *s3Repo) list(ctx context.Context, kind storage.Kind, fn func(string, int64, string) error) error {
	return r.raw.ListTags(ctx, kind, func(t s3.Tag) error { return fn(t.Name, t.Size, t.ETag) })
}

func (r *s3Repo) save(ctx context.Context, h storage.Handle, data []byte, th *Throttle) error {
	return r.st.(storage.StreamSaver).SaveStream(ctx, h, paced{ctx: ctx, data: data, th: th}, int64(len(data)))
}

func (r *s3Repo) stat(ctx context.Context, h storage.Handle) (stat, error) {
	t, err := r.raw.StatTag(ctx, h)
	return stat{size: t.Size, tag: t.ETag, retainUntil: t.RetainUntil}, err
}

func (r *s3Repo) retain(ctx context.Context, h storage.Handle, until time.Time) error {
	return r.raw.Retain(ctx, h, until)
}

func (r *s3Repo) expect(_ string, data func() ([]byte, error)) (string, error) {
	b, err := data()
	if err != nil {
		return "", err
	}
	e, err := r.raw.NewETagHash(int64(len(b)))
	if err != nil {
		return "", err
	}
	_, _ = e.Write(b)
	return e.Sum(), nil
}

func (r *s3Repo) load(ctx context.Context, h storage.Handle) ([]byte, error) {
	return r.st.Load(ctx, h, 0, -1)
}

func (r *s3Repo) remove(ctx context.Context, h storage.Handle) error { return r.st.Remove(ctx, h) }
func (r *s3Repo) close() error                                       { return r.st.Close() }

// cofferTarget writes to a second coffer server as a client enrolled
// there, with the identity in its directory; repositories are named by
// CofferRepoName.
type cofferTarget struct {
	host string
	dir  string
}

func (t *cofferTarget) where(k RepoKey) string {
	name, err := CofferRepoName(k)
	if err != nil {
		name = "?"
	}
	return remote.Scheme + "://" + t.host + "/" + name
}

func (t *cofferTarget) checkLock(context.Context) error {
	return errors.New("--lock-days: a coffer:// target has no object lock; it is for s3: targets")
}

func (t *cofferTarget) open(ctx context.Context, k RepoKey, create bool) (targetRepo, error) {
	name, err := CofferRepoName(k)
	if err != nil {
		return nil, err
	}
	id, _, err := enroll.RenewIfDue(ctx, t.dir, t.host, enroll.Options{})
	if id == nil {
		return nil, fmt.Errorf("the primary's identity at the target (%s): %w", t.dir, err)
	}
	conf := tlspolicy.Default().ClientConfig(id.TLSCertificate(), id.CAPool(), "")
	url := remote.Scheme + "://" + t.host + "/" + name
	var r *remote.Remote
	if create {
		r, err = remote.Create(ctx, url, conf)
		if errors.Is(err, storage.ErrExists) {
			r, err = remote.Open(ctx, url, conf)
		}
	} else {
		r, err = remote.Open(ctx, url, conf)
	}
	if err != nil {
		return nil, err
	}
	return cofferRepo{r}, nil
}

type cofferRepo struct{ r *remote.Remote }

func (c cofferRepo) list(ctx context.Context, kind storage.Kind, fn func(string, int64, string) error) error {
	return c.r.List(ctx, kind, func(fi storage.FileInfo) error { return fn(fi.Name, fi.Size, "") })
}

func (c cofferRepo) save(ctx context.Context, h storage.Handle, data []byte, th *Throttle) error {
	if th != nil {
		if err := th.Wait(ctx, len(data)); err != nil {
			return err
		}
	}
	return c.r.Save(ctx, h, data)
}

func (c cofferRepo) stat(ctx context.Context, h storage.Handle) (stat, error) {
	fi, d, err := c.r.Digest(ctx, h)
	return stat{size: fi.Size, tag: d}, err
}

func (c cofferRepo) retain(context.Context, storage.Handle, time.Time) error {
	return errors.New("a coffer:// target has no object lock")
}

func (c cofferRepo) expect(sha string, _ func() ([]byte, error)) (string, error) { return sha, nil }

func (c cofferRepo) load(ctx context.Context, h storage.Handle) ([]byte, error) {
	return c.r.Load(ctx, h, 0, -1)
}

func (c cofferRepo) remove(ctx context.Context, h storage.Handle) error { return c.r.Remove(ctx, h) }
func (c cofferRepo) close() error                                       { return c.r.Close() }

// sha256Hex is the hex SHA-256 of b.
func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}
