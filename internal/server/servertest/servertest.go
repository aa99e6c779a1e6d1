// Package servertest runs a real coffer server for tests: a throwaway CA,
// a TLS listener on 127.0.0.1 with coffer's policy, and enrolled clients.
//
// Nothing here weakens verification: clients trust only the test CA and
// the server requires their certificates, exactly as in production.
package servertest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/coffer-backup/coffer/internal/pki"
	"github.com/coffer-backup/coffer/internal/server"
	"github.com/coffer-backup/coffer/internal/server/fleet/control"
	"github.com/coffer-backup/coffer/internal/server/state"
	"github.com/coffer-backup/coffer/internal/serverdb"
	"github.com/coffer-backup/coffer/internal/tlspolicy"
)

// Clock is a settable clock for Config.Now; the zero value follows
// time.Now until Set is called.
type Clock struct {
	mu  sync.Mutex
	off time.Duration
}

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.off)
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.off += d
	c.mu.Unlock()
}

// Env is a running server and what clients need to reach it.
type Env struct {
	Dir    string
	DB     *serverdb.SQLite
	Server *server.Server
	Addr   string // 127.0.0.1:port
	CA     *pki.CA
	Policy tlspolicy.Policy
	Clock  *Clock

	cancel   context.CancelFunc
	done     chan error
	sharedDB bool // DB is Options.DB: not closed by Stop
}

// Options adjust the server before it starts.
type Options struct {
	// Config is applied over the defaults (Dir, DB, Now and a short
	// RefreshInterval are filled in when zero). The short interval, 50 ms,
	// lets a test see a database change quickly; the server refuses
	// requests as stale only after ten intervals, and at least 10 s,
	// without a successful read.
	Config server.Config
	// Dir reuses a state directory (to restart a server); empty makes one.
	Dir string
	// WrapDB, if set, wraps the database the server reads (Env.DB stays
	// the unwrapped one), so a test can delay or fail the server's reads.
	WrapDB func(serverdb.DB) serverdb.DB
	// Control, if set, makes the fleet control the server serves, over
	// the server's database (Config.Control).
	Control func(*serverdb.SQLite) *control.Control
	// DB, if set, is a database shared with another server, used instead
	// of the state directory's own and not closed by Stop.
	DB *serverdb.Store
}

// Start initialises a state directory, opens its database and serves on a
// fresh port of 127.0.0.1 until the test ends.
func Start(t testing.TB, opts Options) *Env {
	t.Helper()
	dir := opts.Dir
	if dir == "" {
		dir = t.TempDir()
	}
	if _, err := state.Init(context.Background(), dir, state.InitOptions{Names: []string{"127.0.0.1"}}); err != nil && !errors.Is(err, state.ErrAlreadyInitialised) {
		t.Fatal(err)
	}
	db, shared := opts.DB, opts.DB != nil
	if !shared {
		var err error
		if db, err = serverdb.Open(context.Background(), filepath.Join(dir, serverdb.DefaultFile)); err != nil {
			t.Fatal(err)
		}
	}
	ca, err := pki.LoadCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	clock := &Clock{}
	cfg := opts.Config
	cfg.Dir, cfg.DB = dir, db
	if opts.WrapDB != nil {
		cfg.DB = opts.WrapDB(db)
	}
	if cfg.Now == nil {
		cfg.Now = clock.Now
	}
	if opts.Control != nil {
		cfg.Control = opts.Control(db)
	}
	if cfg.RefreshInterval == 0 {
		cfg.RefreshInterval = 50 * time.Millisecond
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	srv, err := server.New(cfg)
	if err != nil {
		_ = db.Close()
		t.Fatal(err)
	}
	kp, err := ca.IssueServer([]string{"127.0.0.1"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	policy := tlspolicy.Default()
	tlsConf := policy.ServerConfig(kp.TLSCertificate(ca.Cert), ca.Pool(), srv.VerifyConnection)
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := policy.Listen(inner, tlsConf, db.RefusalLog(), tlspolicy.ListenerOptions{})
	ctx, cancel := context.WithCancel(context.Background())
	e := &Env{Dir: dir, DB: db, Server: srv, Addr: inner.Addr().String(), CA: ca, Policy: policy, Clock: clock, cancel: cancel, done: make(chan error, 1), sharedDB: shared}
	go func() { e.done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() { e.Stop(t) })
	return e
}

// Stop shuts the server down and closes its database (idempotent; also
// run when the test ends).
func (e *Env) Stop(t testing.TB) {
	if e.cancel == nil {
		return
	}
	e.cancel()
	e.cancel = nil
	if err := <-e.done; err != nil && !errors.Is(err, context.Canceled) {
		t.Errorf("serve: %v", err)
	}
	if err := e.Server.Close(); err != nil {
		t.Errorf("close server: %v", err)
	}
	if e.sharedDB {
		return
	}
	if err := e.DB.Close(); err != nil {
		t.Errorf("close database: %v", err)
	}
}

// URL returns the coffer:// URL of repository repo on this server.
func (e *Env) URL(repo string) string { return "coffer://" + e.Addr + "/" + repo }

// Identity is an enrolled client's certificate and TLS configuration.
type Identity struct {
	Name   string
	Cert   *x509.Certificate
	TLS    *tls.Config
	Serial string
}

// Enroll issues a certificate for name from the test CA and records the
// client in the database; policy may adjust the client record (quota,
// allow-delete) before it is stored.
func (e *Env) Enroll(t testing.TB, name string, policy func(*serverdb.Client)) *Identity {
	t.Helper()
	id := e.Issue(t, e.CA, name, time.Hour)
	c := serverdb.Client{Name: name, CertSerial: id.Cert.SerialNumber, NotAfter: id.Cert.NotAfter, Created: time.Now()}
	if policy != nil {
		policy(&c)
	}
	ctx := context.Background()
	if err := e.DB.PutClient(ctx, c); err != nil {
		t.Fatal(err)
	}
	if err := e.Server.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	return id
}

// Issue makes a client certificate for name signed by ca (which may be
// another CA than the server's) without enrolling it, and a client TLS
// configuration that trusts only the server's CA.
func (e *Env) Issue(t testing.TB, ca *pki.CA, name string, ttl time.Duration) *Identity {
	t.Helper()
	key, err := pki.NewClientKey()
	if err != nil {
		t.Fatal(err)
	}
	csr, err := pki.NewCSR(key, name)
	if err != nil {
		t.Fatal(err)
	}
	der, serial, err := ca.SignClient(csr, name, ttl, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return e.IdentityFor(name, tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: cert}, fmt.Sprintf("%x", serial))
}

// IdentityFor wraps any certificate in a client TLS configuration that
// trusts only the server's CA.
func (e *Env) IdentityFor(name string, cert tls.Certificate, serial string) *Identity {
	return &Identity{Name: name, Cert: cert.Leaf, TLS: e.Policy.ClientConfig(cert, e.CA.Pool(), "127.0.0.1"), Serial: serial}
}
