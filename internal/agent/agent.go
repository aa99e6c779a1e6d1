// Package agent is coffer's long-running agent: it holds the control
// stream to the server it enrolled with, keeps the signed policy, runs
// scheduled and ordered jobs through internal/client and reports them.
package agent

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coffer-backup/coffer/internal/fleet/api"
	"github.com/coffer-backup/coffer/internal/fleet/policy"
	"github.com/coffer-backup/coffer/internal/keyring"
)

// Default timings of the control connection.
const (
	DefaultMinBackoff = time.Second
	DefaultMaxBackoff = 60 * time.Second
	// StopGrace is how long Run waits, once its context is done, for
	// running jobs to stop and release their locks.
	StopGrace = 10 * time.Second
)

// QueueDir is the report queue's directory in the identity directory.
const QueueDir = "reports"

// Config is what Run needs. Only IdentityDir is required; zero values of
// the rest are documented per field.
type Config struct {
	// IdentityDir holds client.key, client.crt, ca.crt, server and
	// policy.pub (coffer enroll), and the agent's own files: the cached
	// policy (policy.json), the report queue (reports/), the schedule
	// state (agent-state.json), the host key (repo.key) and the client
	// state (state/).
	IdentityDir string
	// KeyFile is the host key ("": IdentityDir/repo.key). The agent
	// creates it (mode 0600) with the first repository it creates.
	KeyFile string
	// Secret, when not nil, opens and creates repositories instead of the
	// host key: a passphrase or a recovery key (--password-file).
	Secret func(ctx context.Context) ([]byte, error)
	// SecretSource names where Secret reads from, for error messages.
	SecretSource string
	// AllowRestoreInPlace lets a restore write outside the policy's
	// restore root (false: refused).
	AllowRestoreInPlace bool
	// Version is sent to the server (api.HeaderAgentVersion) and recorded
	// in snapshots ("": "unknown").
	Version string
	// Logger receives what the agent does (nil: slog.Default()).
	Logger *slog.Logger
	// QueueLimit bounds the report queue (0: DefaultQueueLimit).
	QueueLimit int
	// MinBackoff and MaxBackoff bound the reconnection delay (0: 1 s and
	// 60 s); OfflineAfter is how long a silent stream is kept (0:
	// api.OfflineAfter).
	MinBackoff, MaxBackoff, OfflineAfter time.Duration
	// LimitUpload and LimitDownload bound the jobs' transfers to and from
	// repositories, in bytes per second (0: unlimited); passed to
	// client.Options.
	LimitUpload, LimitDownload int64
	// BeforeKDF and AfterUnlock are passed to client.Options.
	BeforeKDF   keyring.KDFHook
	AfterUnlock func()

	// fileHook, in tests, runs after each file a backup stores, with the
	// job's context: it holds a backup in the middle of its work.
	fileHook func(ctx context.Context)
}

func (c *Config) defaults() {
	if c.KeyFile == "" {
		c.KeyFile = filepath.Join(c.IdentityDir, DefaultKeyFile)
	}
	if c.Version == "" {
		c.Version = "unknown"
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.MinBackoff <= 0 {
		c.MinBackoff = DefaultMinBackoff
	}
	if c.MaxBackoff <= 0 {
		c.MaxBackoff = DefaultMaxBackoff
	}
	c.MaxBackoff = max(c.MaxBackoff, c.MinBackoff)
	if c.OfflineAfter <= 0 {
		c.OfflineAfter = api.OfflineAfter
	}
}

// Agent is one running agent. Its fields are owned by Run's loop unless
// noted.
type Agent struct {
	cfg   Config
	log   *slog.Logger
	id    *identity
	queue *Queue
	conn  *conn

	msgs chan *api.Message // from the stream
	done chan *job         // from finished jobs
	wake chan struct{}     // to the report sender
	quit chan struct{}     // closed once Run no longer takes job ends

	policy *policy.Policy
	gen    atomic.Uint64    // policy.Generation, for the stream goroutine
	plans  map[string]*plan // by repository name
	jobs   map[string]*job  // running, by repository name
	starts lastStarts

	jobsWG sync.WaitGroup
}

// Run runs the agent until ctx is done, then cancels running jobs, waits
// up to StopGrace for them to release their locks and returns nil. It
// fails at start when the identity directory is incomplete.
func Run(ctx context.Context, cfg Config) error {
	a, err := newAgent(cfg)
	if err != nil {
		return err
	}
	return a.run(ctx)
}

func newAgent(cfg Config) (*Agent, error) {
	if cfg.IdentityDir == "" {
		return nil, errors.New("agent: no identity directory")
	}
	cfg.defaults()
	id, err := loadIdentity(cfg.IdentityDir)
	if err != nil {
		return nil, err
	}
	q, err := OpenQueue(filepath.Join(cfg.IdentityDir, QueueDir), cfg.QueueLimit)
	if err != nil {
		return nil, err
	}
	starts, err := loadState(cfg.IdentityDir)
	if err != nil {
		return nil, err
	}
	a := &Agent{cfg: cfg, log: cfg.Logger.With("client", id.client), id: id, queue: q,
		msgs: make(chan *api.Message), done: make(chan *job), wake: make(chan struct{}, 1),
		quit:  make(chan struct{}),
		plans: map[string]*plan{}, jobs: map[string]*job{}, starts: starts}
	a.conn = newConn(a)
	return a, nil
}

func (a *Agent) run(ctx context.Context) error {
	a.loadCachedPolicy()
	bg, stopBG := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); a.conn.loop(bg) }()
	go func() { defer wg.Done(); a.deliverLoop(bg) }()
	a.log.Info("agent started", "server", a.id.server, "version", a.cfg.Version)
	a.loop(ctx)
	a.stopJobs()
	close(a.quit)
	stopBG()
	wg.Wait()
	a.conn.close()
	a.log.Info("agent stopped", "undelivered_reports", a.queue.Len())
	return nil
}

// loop is the agent's one thread of control: messages, job ends and the
// schedule's timer.
func (a *Agent) loop(ctx context.Context) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		a.resetTimer(timer, time.Now())
		select {
		case <-ctx.Done():
			return
		case m := <-a.msgs:
			a.handle(ctx, m)
		case j := <-a.done:
			a.finished(j)
		case <-timer.C:
			a.fire(ctx, time.Now())
		}
	}
}

// stopJobs cancels every running job and waits up to StopGrace for them.
func (a *Agent) stopJobs() {
	for _, j := range a.jobs {
		j.cancel(errStopping)
	}
	waited := make(chan struct{})
	go func() { a.jobsWG.Wait(); close(waited) }()
	deadline := time.After(StopGrace)
	for {
		select {
		case j := <-a.done:
			delete(a.jobs, j.repo)
		case <-waited:
			return
		case <-deadline:
			a.log.Warn("jobs still running at exit", "jobs", len(a.jobs))
			return
		}
	}
}

func (a *Agent) handle(ctx context.Context, m *api.Message) {
	switch m.Type {
	case api.MsgPolicy:
		a.onPolicy(m.Policy)
	case api.MsgJob:
		a.onJob(ctx, m.Job)
	case api.MsgCancel:
		a.onCancel(m.Cancel)
	}
}

// loadCachedPolicy starts from the cached policy, if it verifies.
func (a *Agent) loadCachedPolicy() {
	p, err := policy.Load(a.cfg.IdentityDir, a.id.policyKey, a.id.client)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		a.log.Info("no cached policy: waiting for the server's")
	case err != nil:
		a.refusePolicy(fmt.Errorf("cached policy refused: %w", err))
	default:
		a.log.Info("cached policy loaded", "generation", p.Generation)
		a.setPolicy(p)
	}
}

// onPolicy verifies a policy from the stream against the pinned key, this
// host's name and the generation held, caches it and schedules by it.
func (a *Agent) onPolicy(signed []byte) {
	var held uint64
	if a.policy != nil {
		held = a.policy.Generation
	}
	p, err := policy.Verify(signed, a.id.policyKey, a.id.client, held)
	if err != nil {
		a.refusePolicy(fmt.Errorf("policy from the server refused: %w", err))
		return
	}
	if err := policy.Store(a.cfg.IdentityDir, signed); err != nil {
		a.log.Error("cannot cache the policy", "err", err)
	}
	if a.policy != nil && p.Generation == held {
		return
	}
	a.log.Info("policy received", "generation", p.Generation, "repositories", len(p.Repositories))
	a.setPolicy(p)
}

// refusePolicy logs a refused policy and reports it (a report of kind
// policy, state failed); the policy held stays in force.
func (a *Agent) refusePolicy(err error) {
	a.log.Error("policy refused; keeping the one held", "err", err)
	a.report(&api.Report{Job: newJobID(), Kind: api.KindPolicy, State: api.StateFailed,
		Start: time.Now().UTC(), End: time.Now().UTC(), Error: clip(err.Error())})
}

// report queues r for delivery and wakes the sender.
func (a *Agent) report(r *api.Report) {
	if err := a.queue.Put(r); err != nil {
		a.log.Error("cannot queue a report", "job", r.Job, "err", err)
		return
	}
	a.kick()
}

func newJobID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return api.NewID(b)
}
