// Package server is coffer's storage server: an HTTPS API (internal/wire)
// of opaque objects in per-client namespaces, append-only by default.
//
// Objects are encrypted again at rest with the server's own key. The server
// never holds a repository key: it cannot read what clients store.
package server

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/coffer-backup/coffer/internal/atrest"
	"github.com/coffer-backup/coffer/internal/pki"
	"github.com/coffer-backup/coffer/internal/server/enrollment"
	"github.com/coffer-backup/coffer/internal/server/fleet/control"
	"github.com/coffer-backup/coffer/internal/server/objstore"
	"github.com/coffer-backup/coffer/internal/server/state"
	"github.com/coffer-backup/coffer/internal/serverdb"
	"github.com/coffer-backup/coffer/internal/storage"
	"github.com/coffer-backup/coffer/internal/tlspolicy"
)

// Sentinel errors of starting a server (and see package state's).
var (
	// ErrInsecureTLS: the TLS configuration does not verify client certificates.
	ErrInsecureTLS = errors.New("TLS configuration does not verify client certificates")
)

// Defaults of Config's zero fields.
const (
	DefaultMaxObjectSize     = 64 << 20
	DefaultMaxClientRequests = 32
	DefaultRefreshInterval   = time.Second
	DefaultReadHeaderTimeout = 10 * time.Second
	DefaultReadTimeout       = 5 * time.Minute
	DefaultWriteTimeout      = 5 * time.Minute
	DefaultIdleTimeout       = 2 * time.Minute
	// staleFactor: when the database could not be read for this many refresh
	// intervals, requests are refused (503) rather than served on a
	// revocation list that may be out of date.
	staleFactor = 10
	// minStale is the shortest such window, whatever the interval: a
	// short interval (tests use 50 ms) must not turn one slow read on a
	// loaded machine into refused requests.
	minStale = 10 * time.Second
)

// DefaultAppendOnlyRemovable are the kinds a client without allow-delete
// may still remove: locks, which every backup creates and removes (a lock
// is refreshed by writing a new one and removing the old). Nothing else.
var DefaultAppendOnlyRemovable = []storage.Kind{storage.KindLocks}

// Config configures a Server. Dir and DB are required.
type Config struct {
	// Dir is the state directory made by state.Init.
	Dir string
	// DB holds clients, revocations, tokens and the audit log.
	DB serverdb.DB
	// Enroll answers POST /v1/enroll (on enrollment connections and on the
	// main port); nil answers 501.
	Enroll http.Handler
	// Renew answers POST /v1/renew from an authenticated client (the
	// request's context carries ClientName); nil answers 501.
	Renew http.Handler
	// Fleet answers the rest of the fleet administration API (users,
	// groups, policies under /v1/fleet/) for every authenticated principal,
	// hosts and users, with the caller in the request's context
	// (fleet.CallerFrom); nil answers 404.
	Fleet http.Handler
	// Refusals records requests refused for want of a valid certificate;
	// nil uses DB.RefusalLog().
	Refusals tlspolicy.RefusalLog
	// Logger receives operational messages; nil uses slog.Default().
	Logger *slog.Logger
	// Now is the clock; nil uses time.Now.
	Now func() time.Time

	// MaxObjectSize bounds one upload (default 64 MiB).
	MaxObjectSize int64
	// MaxObjects and MaxRepos cap the objects and repositories of a client
	// whose record sets no cap (default DefaultMaxObjects and
	// DefaultMaxRepos); beyond them uploads and creations get 507.
	MaxObjects, MaxRepos int64
	// MaxClientRequests bounds one client's concurrent requests (default
	// 32); beyond it the server answers 429.
	MaxClientRequests int
	// AppendOnlyRemovable lists the kinds a client without allow-delete may
	// remove; nil means DefaultAppendOnlyRemovable, an empty non-nil slice none.
	AppendOnlyRemovable []storage.Kind
	// EnrollLimits bound enrollment attempts per source address and for
	// the whole server (zero fields: enrollment's defaults); beyond them
	// the server answers 429 with Retry-After.
	EnrollLimits enrollment.Limits
	// Control serves the fleet's control stream, the agents' reports and
	// the jobs and status endpoints of the fleet API; nil answers 501.
	Control *control.Control
	// FleetAccess says what the principal of a fleet administration
	// request (jobs, status, run-now, restore, cancel) may do; the caller
	// is in the request's context (fleet.CallerFrom). nil answers those
	// requests 501.
	FleetAccess func(r *http.Request) (control.Access, error)
	// Login, if set, is called for every TLS connection a person's
	// certificate opens and the server accepts (the fleet audits it as a
	// login); it runs in the handshake, so it must be quick.
	Login func(ctx context.Context, user string, serial *big.Int)
	// RequestLog, if set, receives one JSON line per request with its
	// time, method, status and duration_ms, for latency measurements.
	RequestLog io.Writer

	// RefreshInterval is how often clients and revocations are reloaded
	// from DB (default 1s): a revocation takes effect within it.
	RefreshInterval time.Duration

	// HTTP timeouts; zero values select the defaults above.
	ReadHeaderTimeout, ReadTimeout, WriteTimeout, IdleTimeout time.Duration
}

// Server serves the storage API. It is safe for concurrent use.
type Server struct {
	cfg    Config
	log    *slog.Logger
	now    func() time.Time
	store  *objstore.Store
	revs   pki.RevocationList
	lock   *os.File
	refuse *refusalLimiter

	mu          sync.Mutex
	clients     map[string]serverdb.Client
	lastRefresh time.Time
	// refreshStarted numbers Refresh calls as they start reading;
	// refreshApplied is the number of the one whose result is in place.
	refreshStarted, refreshApplied uint64
	contacts                       map[string]time.Time // to be written
	slots                          map[string]chan struct{}
	usage                          map[string]*clientUsage

	enrollLimit *enrollment.Limiter

	// runMu guards running, the requests in flight (inflight.go).
	runMu   sync.Mutex
	running map[*request]struct{}

	stop      chan struct{}
	stopped   chan struct{}
	closeOnce sync.Once
}

// New opens the state directory: it loads the at-rest key (refusing an
// insecure key file: state.ErrInsecureFile), takes the directory's lock so no second server runs
// on it, removes leftover uploads, and loads clients and revocations from
// the database. Close releases it all.
func New(cfg Config) (*Server, error) {
	if cfg.Dir == "" || cfg.DB == nil {
		return nil, errors.New("server: Config.Dir and Config.DB are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Refusals == nil {
		cfg.Refusals = cfg.DB.RefusalLog()
	}
	if cfg.MaxObjectSize <= 0 {
		cfg.MaxObjectSize = DefaultMaxObjectSize
	}
	cfg.MaxObjects, cfg.MaxRepos = orDefault(cfg.MaxObjects, DefaultMaxObjects), orDefault(cfg.MaxRepos, DefaultMaxRepos)
	if cfg.MaxClientRequests <= 0 {
		cfg.MaxClientRequests = DefaultMaxClientRequests
	}
	if cfg.AppendOnlyRemovable == nil {
		cfg.AppendOnlyRemovable = DefaultAppendOnlyRemovable
	}
	if cfg.RefreshInterval <= 0 {
		cfg.RefreshInterval = DefaultRefreshInterval
	}
	for _, d := range []struct {
		v   *time.Duration
		def time.Duration
	}{{&cfg.ReadHeaderTimeout, DefaultReadHeaderTimeout}, {&cfg.ReadTimeout, DefaultReadTimeout}, {&cfg.WriteTimeout, DefaultWriteTimeout}, {&cfg.IdleTimeout, DefaultIdleTimeout}} {
		if *d.v <= 0 {
			*d.v = d.def
		}
	}

	key, err := state.LoadKey(cfg.Dir)
	if err != nil {
		return nil, err
	}
	lock, err := state.Lock(cfg.Dir)
	if err != nil {
		return nil, err
	}
	s := &Server{
		cfg:         cfg,
		log:         cfg.Logger,
		now:         cfg.Now,
		lock:        lock,
		refuse:      newRefusalLimiter(cfg.Refusals, 600),
		clients:     map[string]serverdb.Client{},
		contacts:    map[string]time.Time{},
		slots:       map[string]chan struct{}{},
		usage:       map[string]*clientUsage{},
		running:     map[*request]struct{}{},
		enrollLimit: enrollment.NewLimiter(cfg.EnrollLimits),
		stop:        make(chan struct{}),
		stopped:     make(chan struct{}),
	}
	fail := func(err error) (*Server, error) {
		if s.store != nil {
			_ = s.store.Close()
		}
		_ = lock.Close()
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.openStore(ctx, key); err != nil {
		return fail(err)
	}
	if err := s.Refresh(ctx); err != nil {
		return fail(err)
	}
	go s.refreshLoop()
	return s, nil
}

// openStore makes the state directory's object and temporary directories
// if missing, opens the object tree, removes what interrupted uploads left
// and completes a layout move a crash interrupted.
func (s *Server) openStore(ctx context.Context, key *atrest.Key) error {
	if err := state.MakeDirs(s.cfg.Dir); err != nil {
		return err
	}
	st, err := OpenObjects(ctx, s.cfg.Dir, key)
	if err != nil {
		return err
	}
	s.store = st
	cleaned, migrated, err := s.store.Prepare(ctx, filepath.Join(s.cfg.Dir, state.TempDir))
	if cleaned > 0 {
		s.log.Info("removed interrupted uploads", "count", cleaned)
	}
	if migrated > 0 {
		s.log.Info("moved config objects to the local storage layout", "repositories", migrated)
	}
	return err
}

// Close stops the background refresh, writes pending last-contact times
// and releases the state directory. It does not close Config.DB.
func (s *Server) Close() error {
	var err error
	s.closeOnce.Do(func() {
		close(s.stop)
		<-s.stopped
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s.flushContacts(ctx)
		err = errors.Join(s.store.Close(), s.lock.Close())
	})
	return err
}

// Revocations is the server's revocation list, reloaded from the database
// every RefreshInterval; VerifyConnection consults it.
func (s *Server) Revocations() *pki.RevocationList { return &s.revs }

// orDefault is v, or def when v is not positive.
func orDefault(v, def int64) int64 {
	if v <= 0 {
		return def
	}
	return v
}
