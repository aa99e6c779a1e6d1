// Package policy is the fleet's per-host policy document: its fields and
// their limits, the Ed25519-signed envelope, the agent's cached copy and the
// server's key files (docs/fleet.md, "The policy").
package policy

import (
	"errors"
	"fmt"
	"math"
	"net/url"
	"path"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/coffer-backup/coffer/internal/bytesize"
	"github.com/coffer-backup/coffer/internal/schedule"
)

// Version is the policy format this package writes and reads.
const Version = 1

// DefaultRestoreRoot is where restores land when a policy names no root.
const DefaultRestoreRoot = "/var/restore"

// Limits Validate enforces; with MaxSigned they bound what an agent accepts.
const (
	MaxRepositories = 32
	MaxPaths        = 256  // per repository
	MaxExcludes     = 1024 // per repository
	MaxPathLen      = 4096 // a path, an exclude pattern, the restore root
	MaxLocationLen  = 512
	MaxKeepCount    = 1_000_000
	MaxTimeout      = 30 * 24 * time.Hour
	MaxGrace        = 366 * 24 * time.Hour
	maxClientName   = 63 // internal/pki.MaxClientName, internal/wire.MaxClientLen
	maxRepoName     = 64 // internal/wire.MaxRepoLen
	escrowKeySize   = 32 // an X25519 public key
)

var (
	// ErrInvalid is wrapped by every error about a policy that is malformed
	// or out of range; the message names the field.
	ErrInvalid = errors.New("invalid policy")
	// ErrVersion is returned for a policy of a version this package does not
	// read (an agent older than its server).
	ErrVersion = errors.New("unsupported policy version")
)

// Policy is one host's policy, version 1. The server makes it from the
// fleet's settings and signs it (Sign); the agent verifies it (Verify) and
// follows it. Zero values are documented per field.
type Policy struct {
	// Version is the format version, Version.
	Version int `json:"version"`
	// Client is the host the policy is for, an enrolled client name.
	Client string `json:"client"`
	// Generation rises with every change to the host's policy, from 1; an
	// agent refuses a generation below the one it holds (a replay).
	Generation uint64 `json:"generation"`
	// Issued is when the server made this generation.
	Issued time.Time `json:"issued"`
	// Repositories are what the host backs up and where; none is a host
	// with nothing to do.
	Repositories []Repository `json:"repositories"`
	// RestoreRoot is the directory restores must land under; empty is
	// DefaultRestoreRoot.
	RestoreRoot string `json:"restore_root,omitempty"`
	// ReportFileNames lets the agent put file names in its reports; false
	// reports counts only.
	ReportFileNames bool `json:"report_file_names"`
	// EscrowPublicKey is the X25519 public key every repository also seals
	// its master key to (32 bytes, base64 in JSON); empty is no escrow.
	EscrowPublicKey []byte `json:"escrow_public_key,omitempty"`
}

// Repository is one repository of a host and the jobs that keep it.
type Repository struct {
	// Name tells the host's repositories apart: 1-64 of [a-z0-9_-].
	Name string `json:"name"`
	// Location is a repository location as coffer's commands take it
	// (coffer://HOST[:PORT]/REPO, s3:https://..., local:/PATH or /PATH);
	// empty is the default, coffer://SERVER/<client> on the host's server.
	Location string `json:"location,omitempty"`
	// Paths are the absolute paths backed up; at least one.
	Paths []string `json:"paths"`
	// Excludes are exclude patterns as backup --exclude takes them.
	Excludes []string `json:"excludes,omitempty"`
	// ExcludeCaches skips directories holding a CACHEDIR.TAG.
	ExcludeCaches bool `json:"exclude_caches,omitempty"`
	// Schedule is when backups run: an expression internal/schedule parses.
	Schedule string `json:"schedule"`
	// Window is when a job may start (schedule.ParseWindow); empty is always.
	Window string `json:"window,omitempty"`
	// Jitter bounds the per-host delay added to each start; 0 is none.
	Jitter Duration `json:"jitter,omitzero"`
	// Retry is the backoff after a failure; the zero Retry never retries.
	Retry Retry `json:"retry,omitzero"`
	// Timeout stops a job that runs longer; 0 is no limit.
	Timeout Duration `json:"timeout,omitzero"`
	// Check schedules check jobs; nil is none.
	Check *Check `json:"check,omitempty"`
	// Prune schedules forget+prune; the server runs it on its own clock and
	// orders the job with its grant, so the agent only shows it. nil: never.
	Prune *Prune `json:"prune,omitempty"`
	// Keep is the retention the server applies on its arrival stamps; the
	// zero Keep keeps everything.
	Keep Keep `json:"keep,omitzero"`
	// Grace is how long past its cadence a backup may be late before it is
	// missed; 0 is one cadence, at least schedule.MinGrace.
	Grace Duration `json:"grace,omitzero"`
}

// Retry is a backoff, as schedule.Retry: Interval to the first retry, each
// next delay Factor times the one before, at most Attempts retries.
type Retry struct {
	Interval Duration `json:"interval,omitzero"`
	Factor   float64  `json:"factor,omitempty"`
	Attempts int      `json:"attempts,omitempty"`
}

// Check is a repository's check job.
type Check struct {
	// Schedule is when it runs (schedule.Parse).
	Schedule string `json:"schedule"`
	// ReadDataSubset is check --read-data-subset ("10%", "1/5", "500M");
	// empty reads no pack data.
	ReadDataSubset string `json:"read_data_subset,omitempty"`
}

// Prune is a repository's forget+prune job.
type Prune struct {
	// Schedule is when the server orders it (schedule.Parse).
	Schedule string `json:"schedule"`
}

// Keep is the retention policy, named as coffer forget's --keep-* flags and
// internal/maintenance's Policy JSON: counts of buckets from the newest
// snapshot (-1 keeps every bucket), and Within, a span such as "1y2m3d4h".
type Keep struct {
	Last    int    `json:"last,omitempty"`
	Hourly  int    `json:"hourly,omitempty"`
	Daily   int    `json:"daily,omitempty"`
	Weekly  int    `json:"weekly,omitempty"`
	Monthly int    `json:"monthly,omitempty"`
	Yearly  int    `json:"yearly,omitempty"`
	Within  string `json:"within,omitempty"`
}

// Root returns the restore root in force: RestoreRoot or DefaultRestoreRoot.
func (p *Policy) Root() string {
	if p.RestoreRoot == "" {
		return DefaultRestoreRoot
	}
	return p.RestoreRoot
}

// Timing returns the repository's backup schedule and timing, parsed. It
// fails only for a repository Validate refuses.
func (r *Repository) Timing() (schedule.Schedule, schedule.Timing, error) {
	s, err := schedule.Parse(r.Schedule)
	if err != nil {
		return schedule.Schedule{}, schedule.Timing{}, err
	}
	w, err := schedule.ParseWindow(r.Window)
	if err != nil {
		return schedule.Schedule{}, schedule.Timing{}, err
	}
	return s, r.timing(w), nil
}

func (r *Repository) timing(w schedule.Window) schedule.Timing {
	return schedule.Timing{
		Jitter:  r.Jitter.D(),
		Window:  w,
		Retry:   schedule.Retry{Interval: r.Retry.Interval.D(), Factor: r.Retry.Factor, Attempts: r.Retry.Attempts},
		Timeout: r.Timeout.D(),
		Grace:   r.Grace.D(),
	}
}

// invalid returns an ErrInvalid error naming field; err, if any, is wrapped too.
func invalid(field string, format string, args ...any) error {
	return fmt.Errorf("%w: %s: %w", ErrInvalid, field, fmt.Errorf(format, args...))
}

// Validate reports the first field that is missing or out of range, naming
// it (e.g. "repositories[0].schedule"); errors wrap ErrInvalid, and
// ErrVersion for another version.
func (p *Policy) Validate() error {
	if p.Version != Version {
		return fmt.Errorf("%w %d: this coffer reads version %d", ErrVersion, p.Version, Version)
	}
	if err := validateClientName(p.Client); err != nil {
		return invalid("client", "%w", err)
	}
	if p.Generation == 0 {
		return invalid("generation", "must be at least 1")
	}
	if p.Issued.IsZero() {
		return invalid("issued", "missing")
	}
	if len(p.Repositories) > MaxRepositories {
		return invalid("repositories", "%d repositories, at most %d", len(p.Repositories), MaxRepositories)
	}
	seen := make(map[string]bool, len(p.Repositories))
	for i := range p.Repositories {
		r := &p.Repositories[i]
		if err := r.validate(fmt.Sprintf("repositories[%d]", i)); err != nil {
			return err
		}
		if seen[r.Name] {
			return invalid(fmt.Sprintf("repositories[%d].name", i), "%q given twice", r.Name)
		}
		seen[r.Name] = true
	}
	if p.RestoreRoot != "" {
		if err := validateRestoreRoot(p.RestoreRoot); err != nil {
			return invalid("restore_root", "%w", err)
		}
	}
	if len(p.EscrowPublicKey) != 0 && len(p.EscrowPublicKey) != escrowKeySize {
		return invalid("escrow_public_key", "%d bytes, an X25519 public key has %d", len(p.EscrowPublicKey), escrowKeySize)
	}
	return nil
}

func (r *Repository) validate(field string) error {
	if err := validateRepoName(r.Name); err != nil {
		return invalid(field+".name", "%w", err)
	}
	if err := validateLocation(r.Location); err != nil {
		return invalid(field+".location", "%w", err)
	}
	if err := validatePaths(r.Paths, field+".paths"); err != nil {
		return err
	}
	if err := validateExcludes(r.Excludes, field+".excludes"); err != nil {
		return err
	}
	if _, err := schedule.Parse(r.Schedule); err != nil {
		return invalid(field+".schedule", "%w", err)
	}
	w, err := schedule.ParseWindow(r.Window)
	if err != nil {
		return invalid(field+".window", "%w", err)
	}
	if err := r.validateDurations(field, w); err != nil {
		return err
	}
	if r.Check != nil {
		if _, err := schedule.Parse(r.Check.Schedule); err != nil {
			return invalid(field+".check.schedule", "%w", err)
		}
		if err := validateSubset(r.Check.ReadDataSubset); err != nil {
			return invalid(field+".check.read_data_subset", "%w", err)
		}
	}
	if r.Prune != nil {
		if _, err := schedule.Parse(r.Prune.Schedule); err != nil {
			return invalid(field+".prune.schedule", "%w", err)
		}
	}
	return r.Keep.validate(field + ".keep")
}

// validateDurations checks jitter, retry, timeout and grace: schedule's own
// limits first, then this package's upper bounds.
func (r *Repository) validateDurations(field string, w schedule.Window) error {
	for _, d := range []struct {
		name string
		d    Duration
		max  time.Duration
	}{
		{"jitter", r.Jitter, schedule.MaxJitter},
		{"retry.interval", r.Retry.Interval, schedule.MaxRetryDelay},
		{"timeout", r.Timeout, MaxTimeout},
		{"grace", r.Grace, MaxGrace},
	} {
		if d.d < 0 || d.d.D() > d.max {
			return invalid(field+"."+d.name, "%s: must be between 0 and %s", time.Duration(d.d), Duration(d.max))
		}
	}
	if err := r.timing(w).Validate(); err != nil {
		return invalid(field+".retry", "%w", err)
	}
	return nil
}

func (k Keep) validate(field string) error {
	for _, c := range []struct {
		name string
		n    int
	}{{"last", k.Last}, {"hourly", k.Hourly}, {"daily", k.Daily}, {"weekly", k.Weekly}, {"monthly", k.Monthly}, {"yearly", k.Yearly}} {
		if c.n < -1 || c.n > MaxKeepCount {
			return invalid(field+"."+c.name, "%d: must be between -1 (all) and %d", c.n, MaxKeepCount)
		}
	}
	if k.Within != "" {
		if err := validateWithin(k.Within); err != nil {
			return invalid(field+".within", "%w", err)
		}
	}
	return nil
}

// validateClientName is internal/pki's rule for client names: 1-63 of
// [a-z0-9._-], starting with a letter or digit, without "..".
func validateClientName(name string) error {
	if len(name) == 0 || len(name) > maxClientName {
		return fmt.Errorf("client name must be 1-%d characters", maxClientName)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(lowerOrDigit(c) || i > 0 && (c == '.' || c == '_' || c == '-')) {
			return fmt.Errorf("client name %q: only a-z, 0-9, '.', '_', '-' allowed, starting with a letter or digit", name)
		}
	}
	if strings.Contains(name, "..") {
		return fmt.Errorf("client name %q contains \"..\"", name)
	}
	return nil
}

// validateRepoName is internal/wire's rule for repository names: 1-64 of
// [a-z0-9_-].
func validateRepoName(name string) error {
	if len(name) == 0 || len(name) > maxRepoName {
		return fmt.Errorf("repository name must be 1-%d characters", maxRepoName)
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; !(lowerOrDigit(c) || c == '_' || c == '-') {
			return fmt.Errorf("repository name %q: only a-z, 0-9, '_', '-' allowed", name)
		}
	}
	return nil
}

func lowerOrDigit(c byte) bool { return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' }

// text checks a string the policy carries: non-empty, bounded, UTF-8, free
// of control characters (NUL cannot be in a path; newlines would forge lines
// in logs and reports).
func text(s string, maxLen int) error {
	switch {
	case s == "":
		return errors.New("empty")
	case len(s) > maxLen:
		return fmt.Errorf("%d bytes, at most %d", len(s), maxLen)
	case !utf8.ValidString(s):
		return fmt.Errorf("%q is not valid UTF-8 (JSON cannot carry it)", s)
	case strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f }):
		return fmt.Errorf("%q contains a control character", s)
	}
	return nil
}

func validatePaths(paths []string, field string) error {
	if len(paths) == 0 {
		return invalid(field, "no path to back up")
	}
	if len(paths) > MaxPaths {
		return invalid(field, "%d paths, at most %d", len(paths), MaxPaths)
	}
	for i, p := range paths {
		if err := text(p, MaxPathLen); err != nil {
			return invalid(fmt.Sprintf("%s[%d]", field, i), "%w", err)
		}
		if !path.IsAbs(p) {
			return invalid(fmt.Sprintf("%s[%d]", field, i), "%q is not an absolute path", p)
		}
	}
	return nil
}

func validateExcludes(excludes []string, field string) error {
	if len(excludes) > MaxExcludes {
		return invalid(field, "%d patterns, at most %d", len(excludes), MaxExcludes)
	}
	for i, e := range excludes {
		if err := text(e, MaxPathLen); err != nil {
			return invalid(fmt.Sprintf("%s[%d]", field, i), "%w", err)
		}
	}
	return nil
}

func validateRestoreRoot(root string) error {
	if err := text(root, MaxPathLen); err != nil {
		return err
	}
	if !path.IsAbs(root) || path.Clean(root) != root {
		return fmt.Errorf("%q is not a clean absolute path", root)
	}
	if root == "/" {
		return errors.New(`"/" would let a restore overwrite the whole host`)
	}
	return nil
}

const locationForms = "want coffer://HOST[:PORT]/REPO, s3:https://HOST/BUCKET[/PREFIX], local:/PATH or /PATH"

// validateLocation checks the shape of a repository location; the agent's
// storage layer parses it in full when it opens the repository.
func validateLocation(loc string) error {
	if loc == "" {
		return nil
	}
	if err := text(loc, MaxLocationLen); err != nil {
		return err
	}
	switch {
	case strings.HasPrefix(loc, "coffer://"):
		u, err := url.Parse(loc)
		if err != nil || u.Host == "" || u.User != nil || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" {
			return fmt.Errorf("%q: %s", loc, locationForms)
		}
		if err := validateRepoName(strings.TrimPrefix(u.Path, "/")); err != nil || !strings.HasPrefix(u.Path, "/") {
			return fmt.Errorf("%q: %s", loc, locationForms)
		}
	case strings.HasPrefix(loc, "s3:"):
		u, err := url.Parse(strings.TrimPrefix(loc, "s3:"))
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return fmt.Errorf("%q: %s", loc, locationForms)
		}
	case path.IsAbs(strings.TrimPrefix(loc, "local:")):
	default:
		return fmt.Errorf("%q: %s (a relative path means nothing to an agent)", loc, locationForms)
	}
	return nil
}

// validateSubset checks a --read-data-subset as internal/check.ParseSubset
// reads it: "N%" in (0, 100], "n/m" with 1 <= n <= m <= 256, or a size.
func validateSubset(s string) error {
	if s == "" {
		return nil
	}
	if p, ok := strings.CutSuffix(s, "%"); ok {
		if f, err := strconv.ParseFloat(p, 64); err != nil || math.IsNaN(f) || f <= 0 || f > 100 {
			return fmt.Errorf("%q: want a percentage in (0, 100]", s)
		}
		return nil
	}
	if a, b, ok := strings.Cut(s, "/"); ok {
		n, err1 := strconv.Atoi(a)
		m, err2 := strconv.Atoi(b)
		if err1 != nil || err2 != nil || m < 1 || m > 256 || n < 1 || n > m {
			return fmt.Errorf("%q: want n/m with 1 <= n <= m <= 256", s)
		}
		return nil
	}
	if n, err := bytesize.Parse(s); err != nil || n <= 0 {
		return fmt.Errorf("%q: want N%%, n/m or a size such as 500M", s)
	}
	return nil
}
