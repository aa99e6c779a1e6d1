// Package control is the server side of the fleet's control connection:
// the hub of agents' open streams, their job reports, the jobs the server
// orders (run-now, restore, cancel), and the fleet status with its
// missed-backup watch (docs/fleet.md, "The control connection", "Jobs").
package control

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/coffer-backup/coffer/internal/fleet/api"
	"github.com/coffer-backup/coffer/internal/fleet/policy"
	"github.com/coffer-backup/coffer/internal/serverdb"
)

// Errors the handlers map to statuses, for callers that branch on them.
var (
	// ErrForbidden: the caller may not act on that job or host (403).
	ErrForbidden = errors.New("forbidden")
	// ErrNoPolicy: the host has no policy (a PolicySource's answer).
	ErrNoPolicy = errors.New("the host has no policy")
	// ErrRefused: a request that is well formed but cannot be done: an
	// unknown or revoked host, a repository not in its policy, a restore
	// target outside the restore root, a job already finished.
	ErrRefused = errors.New("refused")
)

// ServerRestarted is the error a job running when the server stopped is
// marked failed with, until its agent reports it.
const ServerRestarted = "server restarted while the job was running"

// Store is what control keeps in the server's database; *serverdb.SQLite
// implements it.
type Store interface {
	InsertJob(ctx context.Context, j serverdb.Job) error
	Job(ctx context.Context, id string) (serverdb.Job, error)
	UpdateJob(ctx context.Context, id string, change func(cur serverdb.Job, found bool) (*serverdb.Job, error)) error
	UpdateJobs(ctx context.Context, updates []serverdb.JobUpdate) []error
	Jobs(ctx context.Context, f serverdb.JobFilter) ([]serverdb.Job, error)
	FailRunningJobs(ctx context.Context, reason string, now time.Time) (int64, error)
	AgentConnected(ctx context.Context, client, version string, now time.Time) error
	AgentsConnected(ctx context.Context, conns []serverdb.AgentConn) []error
	AddDropped(ctx context.Context, client string, n int64) error
	Agents(ctx context.Context) (map[string]serverdb.Agent, error)
	Watches(ctx context.Context) (map[string]map[string]serverdb.Watch, error)
	StartWatch(ctx context.Context, client, repository string, since time.Time) error
	RecordMissed(ctx context.Context, job serverdb.Job, deadline time.Time) error
	Client(ctx context.Context, name string) (serverdb.Client, error)
	Clients(ctx context.Context) ([]serverdb.Client, error)
	Stamps(ctx context.Context, client, repo string) ([]serverdb.Stamp, error)
	PutGrant(ctx context.Context, g serverdb.Grant) error
}

// PolicySource gives each host's current signed policy.
type PolicySource interface {
	// SignedPolicy returns client's policy as policy.Sign made it, and its
	// generation; an error wrapping ErrNoPolicy or serverdb.ErrNotFound
	// when the host has none.
	SignedPolicy(ctx context.Context, client string) ([]byte, uint64, error)
}

// Event is something alerts are raised for: a missed backup, or a job that
// reached a final state.
type Event struct {
	Time   time.Time
	Client string
	Job    serverdb.Job
	// Detail says what happened in a sentence ("no successful backup
	// since ...").
	Detail string
}

// Config configures a Control. Store is required.
type Config struct {
	Store Store
	// Policies gives hosts' policies; nil: no host has one.
	Policies PolicySource
	// PolicyKey is the public half of the policy-signing key; the server
	// reads hosts' schedules and restore roots from the policies it signed.
	PolicyKey ed25519.PublicKey
	// Now is the clock (default time.Now).
	Now    func() time.Time
	Logger *slog.Logger
	// PingInterval is how often a stream is pinged (default
	// api.PingInterval).
	PingInterval time.Duration
	// WriteTimeout bounds one write to a stream (default 30 s): an agent
	// that stops reading loses its stream.
	WriteTimeout time.Duration
	// Seen is called with a host's name whenever its stream is written to,
	// so the server keeps its last contact current; nil: not recorded.
	Seen func(client string)
	// Usage returns what a host stores, as charged, if the server has
	// counted it; nil: unknown.
	Usage func(client string) (int64, bool)
	// Version is the server's version; agents older than it are flagged.
	Version string
	// Notify receives alert events (missed backups, finished jobs); it must
	// not block. nil: none are raised.
	Notify func(Event)
	// Audit records orders, grants and cancellations in the audit log;
	// nil: they are not recorded (tests without a log).
	Audit Auditor
}

// Control is the fleet's control layer. It is safe for concurrent use.
type Control struct {
	cfg   Config
	log   *slog.Logger
	now   func() time.Time
	hub   *Hub
	cache policyCache
	// reports stores the agents' reports that arrive together in one
	// transaction.
	reports groupCommit[serverdb.JobUpdate]
	// agents records the streams' connections that arrive together in
	// one transaction.
	agents groupCommit[serverdb.AgentConn]
}

// New returns a Control over cfg.
func New(cfg Config) (*Control, error) {
	if cfg.Store == nil {
		return nil, errors.New("control: Config.Store is required")
	}
	if cfg.Policies != nil && len(cfg.PolicyKey) != ed25519.PublicKeySize {
		return nil, errors.New("control: Config.PolicyKey is required with Config.Policies")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.PingInterval <= 0 {
		cfg.PingInterval = api.PingInterval
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = 30 * time.Second
	}
	return &Control{cfg: cfg, log: cfg.Logger, now: cfg.Now, hub: NewHub(), cache: policyCache{m: map[string]cachedPolicy{}}}, nil
}

// Hub is the control's hub of open streams.
func (c *Control) Hub() *Hub { return c.hub }

// PolicyChanged tells the streams of clients that their policies changed;
// the new policy reaches each online host at once.
func (c *Control) PolicyChanged(clients []string) { c.hub.Notify(clients...) }

// Recover runs at server start: it marks the jobs that were running when
// the server stopped failed, with ServerRestarted (an agent's later report
// of such a job replaces the mark). Queued jobs stay queued and are sent
// when their host connects.
func (c *Control) Recover(ctx context.Context) error {
	n, err := c.cfg.Store.FailRunningJobs(ctx, ServerRestarted, c.now())
	if err != nil {
		return err
	}
	if n > 0 {
		c.log.Warn("jobs that were running when the server stopped are marked failed until their agents report them", "jobs", n)
	}
	return nil
}

// cachedPolicy is a host's policy as last read, by generation.
type cachedPolicy struct {
	signed     []byte
	generation uint64
	policy     *policy.Policy
}

// policyCache keeps each host's verified policy so that reports and status
// do not verify a signature on every call.
type policyCache struct {
	mu sync.Mutex
	m  map[string]cachedPolicy
}

// policyOf returns client's current policy, signed and parsed; ok is false
// when it has none.
func (c *Control) policyOf(ctx context.Context, client string) (cachedPolicy, bool, error) {
	if c.cfg.Policies == nil {
		return cachedPolicy{}, false, nil
	}
	signed, gen, err := c.cfg.Policies.SignedPolicy(ctx, client)
	if errors.Is(err, ErrNoPolicy) || errors.Is(err, serverdb.ErrNotFound) || err == nil && len(signed) == 0 {
		return cachedPolicy{}, false, nil
	}
	if err != nil {
		return cachedPolicy{}, false, fmt.Errorf("policy of %s: %w", client, err)
	}
	c.cache.mu.Lock()
	cp, hit := c.cache.m[client]
	c.cache.mu.Unlock()
	if hit && cp.generation == gen && string(cp.signed) == string(signed) {
		return cp, true, nil
	}
	p, err := policy.Verify(signed, c.cfg.PolicyKey, client, 0)
	if err != nil {
		return cachedPolicy{}, false, fmt.Errorf("policy of %s does not verify with the server's key: %w", client, err)
	}
	cp = cachedPolicy{signed: signed, generation: p.Generation, policy: p}
	c.cache.mu.Lock()
	c.cache.m[client] = cp
	c.cache.mu.Unlock()
	return cp, true, nil
}
