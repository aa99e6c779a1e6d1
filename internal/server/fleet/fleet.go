// Package fleet is the server's fleet administration: principals and
// their roles (Authorize), users, groups, per-host policies signed with the
// policy key, and the /v1/fleet/ API that exposes them (docs/fleet.md).
//
// It holds the policy signing key but no repository key: like the rest of
// the server it cannot read backup data (internal/server/imports_test.go).
package fleet

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net/http"
	"sync"
	"time"

	"github.com/coffer-backup/coffer/internal/auditlog"
	"github.com/coffer-backup/coffer/internal/pki"
	"github.com/coffer-backup/coffer/internal/server/fleet/control"
	"github.com/coffer-backup/coffer/internal/serverdb"
)

// Store is what the fleet keeps in the server's database
// (*serverdb.SQLite implements it).
type Store interface {
	LogEvent(ctx context.Context, e serverdb.Event) error
	Clients(ctx context.Context) ([]serverdb.Client, error)
	User(ctx context.Context, name string) (serverdb.User, error)
	Users(ctx context.Context) ([]serverdb.User, error)
	AddUser(ctx context.Context, u serverdb.User, now time.Time) error
	RemoveUser(ctx context.Context, name string, now time.Time, reason string) error
	Tokens() pki.TokenStore
	AddGroup(ctx context.Context, name string, now time.Time) error
	AssignGroup(ctx context.Context, group string, clients []string) error
	Groups(ctx context.Context) ([]serverdb.Group, error)
	GroupOf(ctx context.Context, client string) (string, error)
	PutPolicySettings(ctx context.Context, rec serverdb.PolicyRecord) error
	PolicySettings(ctx context.Context, target string) (serverdb.PolicyRecord, error)
	PolicyRecords(ctx context.Context) ([]serverdb.PolicyRecord, error)
	PolicyGeneration(ctx context.Context, client string, digest []byte, now time.Time) (uint64, time.Time, error)
	FleetSetting(ctx context.Context, key string) (string, error)
	SetFleetSetting(ctx context.Context, key, value string) error
}

// Config configures a Fleet. Store, CA and Key are required.
type Config struct {
	Store Store
	// CA issues users' enrollment tokens (only its fingerprint is used).
	CA *pki.CA
	// Key signs policies (D/policy.key).
	Key ed25519.PrivateKey
	// Changed, if set, is called after a user was removed, so the server
	// reloads its revocations at once (server.Server.Refresh).
	Changed func(context.Context) error
	// Logger receives refusals and errors; nil uses slog.Default().
	Logger *slog.Logger
	// Now is the clock; nil uses time.Now.
	Now func() time.Time
	// Alerts administers the alert channels; nil: the alert endpoints
	// answer 404.
	Alerts AlertAdmin
	// AuditLog reads the server's audit log for api.AuditPath; nil: that
	// endpoint answers 404.
	AuditLog AuditReader
	// Audit records the fleet's changes, refusals and logins in the audit
	// log with who acted; nil: they go to the database's events table,
	// which the server's log takes them from, with the server as actor.
	Audit control.Auditor
}

// Fleet administers the fleet. It is safe for concurrent use.
type Fleet struct {
	store   Store
	ca      *pki.CA
	key     ed25519.PrivateKey
	changed func(context.Context) error
	log     *slog.Logger
	now     func() time.Time
	alerts  AlertAdmin
	// auditLog reads the audit log (Config.AuditLog).
	auditLog AuditReader
	auditor  control.Auditor

	mu        sync.Mutex
	listeners []func(clients []string)
}

// New returns a Fleet over cfg.
func New(cfg Config) (*Fleet, error) {
	if cfg.Store == nil || cfg.CA == nil || cfg.Key == nil {
		return nil, errors.New("fleet: Config.Store, CA and Key are required")
	}
	f := &Fleet{store: cfg.Store, ca: cfg.CA, key: cfg.Key, changed: cfg.Changed, log: cfg.Logger, now: cfg.Now, alerts: cfg.Alerts, auditLog: cfg.AuditLog, auditor: cfg.Audit}
	if f.log == nil {
		f.log = slog.Default()
	}
	if f.now == nil {
		f.now = time.Now
	}
	return f, nil
}

// SetChanged sets Config.Changed after New (the server exists only later).
func (f *Fleet) SetChanged(fn func(context.Context) error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.changed = fn
}

// PublicKey is the policy key's public half, which agents pin.
func (f *Fleet) PublicKey() ed25519.PublicKey { return f.key.Public().(ed25519.PublicKey) }

// OnPolicyChange registers fn, called (in its own goroutine) with the
// clients whose policy may have changed, once the change is committed:
// SignedPolicy then returns the new generation.
func (f *Fleet) OnPolicyChange(fn func(clients []string)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.listeners = append(f.listeners, fn)
}

func (f *Fleet) notify(clients []string) {
	if len(clients) == 0 {
		return
	}
	f.mu.Lock()
	ls := append([]func([]string){}, f.listeners...)
	f.mu.Unlock()
	for _, fn := range ls {
		go fn(append([]string(nil), clients...))
	}
}

// ErrUnknownPrincipal: a caller whose user record is gone.
var ErrUnknownPrincipal = errors.New("unknown principal")

// Principal resolves an authenticated certificate's kind and name to a
// Principal: a host has RoleHost and its own name as scope; a user the
// role and scope of its record (ErrUnknownPrincipal if removed, or if the
// certificate is not the one it enrolled with).
func (f *Fleet) Principal(ctx context.Context, kind, name string, serial *big.Int) (Principal, error) {
	if kind == pki.KindClient {
		return Principal{Kind: kind, Name: name, Role: RoleHost, Scope: []string{"client:" + name}}, nil
	}
	u, err := f.store.User(ctx, name)
	if errors.Is(err, serverdb.ErrNotFound) {
		return Principal{}, fmt.Errorf("%w: user %q", ErrUnknownPrincipal, name)
	}
	if err != nil {
		return Principal{}, err
	}
	if serial != nil && (u.CertSerial == nil || u.CertSerial.Cmp(serial) != 0) {
		return Principal{}, fmt.Errorf("%w: user %q: not its current certificate", ErrUnknownPrincipal, name)
	}
	return Principal{Kind: pki.KindUser, Name: name, Role: Role(u.Role), Scope: u.Scope}, nil
}

type callerKey struct{}

// Caller is the authenticated certificate of a request, as the server's
// authentication put it in the request's context.
type Caller struct {
	Kind   string // pki.KindClient or pki.KindUser
	Name   string
	Serial *big.Int
}

// WithCaller returns ctx carrying c.
func WithCaller(ctx context.Context, c Caller) context.Context {
	return context.WithValue(ctx, callerKey{}, c)
}

// CallerFrom returns the Caller WithCaller put in ctx.
func CallerFrom(ctx context.Context) (Caller, bool) {
	c, ok := ctx.Value(callerKey{}).(Caller)
	return c, ok
}

// access is control.Access for one principal: the jobs and status
// endpoints pass Authorize like every other call.
type access struct {
	f *Fleet
	p Principal
}

// Access returns what the caller of r may do on the jobs and status
// endpoints (server.Config.FleetAccess).
func (f *Fleet) Access(r *http.Request) (control.Access, error) {
	p, err := f.CallerPrincipal(r.Context())
	if err != nil {
		return nil, HTTPError(err)
	}
	return access{f: f, p: p}, nil
}

func (a access) Authorize(ctx context.Context, action control.Action, client string) error {
	target := ""
	if client != "" {
		target = "client:" + client
	}
	if err := a.f.Authorize(ctx, a.p, Action(action), target); err != nil {
		if errors.Is(err, ErrForbidden) {
			return control.Forbidden(err)
		}
		return err
	}
	return nil
}

func (a access) Sees(action control.Action, client string) bool {
	ok, err := a.f.InScope(context.Background(), a.p, client)
	return err == nil && ok && Decide(context.Background(), a.p, Action(action), "", a.f.store.GroupOf) == nil
}

func (a access) Actor() auditlog.Actor { return a.p.actor() }

func (a access) Name() string {
	if a.p.Kind == pki.KindUser {
		return serverdb.UserRevocationName(a.p.Name)
	}
	return a.p.Name
}
