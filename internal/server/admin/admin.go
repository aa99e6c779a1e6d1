// Package admin is the server's administrative facade: enrollment tokens,
// revocation, client policy, the client list and the TLS refusal report.
package admin

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/coffer-backup/coffer/internal/pki"
	"github.com/coffer-backup/coffer/internal/server"
	"github.com/coffer-backup/coffer/internal/server/state"
	"github.com/coffer-backup/coffer/internal/serverdb"
	"github.com/coffer-backup/coffer/internal/tlspolicy"
)

// DefaultTokenTTL is how long an enrollment token stays valid by default.
const DefaultTokenTTL = 15 * time.Minute

// Admin runs the administrative commands on a state directory. They share
// the database with a running server, so they take effect on it: a
// revocation or a policy change within its refresh interval.
type Admin struct {
	Dir      string
	DB       serverdb.DB
	Settings state.Settings
	Now      func() time.Time
}

// Open opens an initialised state directory as its owner.
func Open(ctx context.Context, dir string) (*Admin, error) {
	if err := state.CheckOwner(dir); err != nil {
		return nil, err
	}
	st, err := state.LoadSettings(dir)
	if err != nil {
		return nil, err
	}
	db, err := state.OpenDB(ctx, dir)
	if err != nil {
		return nil, err
	}
	return &Admin{Dir: dir, DB: db, Settings: st, Now: time.Now}, nil
}

// Close closes the database.
func (a *Admin) Close() error { return a.DB.Close() }

// ErrClientExists: a token was asked for a client that is enrolled
// (active or revoked) without TokenOptions.Replace.
var ErrClientExists = errors.New("client is already enrolled")

// TokenOptions configure IssueToken.
type TokenOptions struct {
	// TTL is how long the token stays valid (default DefaultTokenTTL).
	TTL time.Duration
	// Replace allows a token for a client that is enrolled, active or
	// revoked: redeeming it gives the name to the new holder.
	Replace bool
}

// IssuedToken is a new enrollment token.
type IssuedToken struct {
	Token   string // the encoded token: the only copy of its secret
	Expires time.Time
	// Replaces is the client record the token will replace when redeemed
	// (nil for a new client).
	Replaces *serverdb.Client
}

// ReplaceNote says what redeeming a token for the existing client c does:
// its current certificate is revoked, a revoked client is enabled again,
// and its repositories and policy carry over.
func ReplaceNote(c serverdb.Client) string {
	serial := "none"
	if c.CertSerial != nil {
		serial = c.CertSerial.Text(16)
	}
	if c.Revoked() {
		return fmt.Sprintf("client %q was revoked at %s; redeeming this token enables it again with a new certificate (the revoked one, serial %s, stays revoked); its repositories, quota and allow-delete setting carry over",
			c.Name, c.RevokedAt.UTC().Format(time.RFC3339), serial)
	}
	return fmt.Sprintf("client %q is enrolled and active; redeeming this token revokes its current certificate (serial %s, expires %s) and gives the name, its repositories, quota and allow-delete setting to the new holder; until then the current certificate keeps working (run coffer server revoke first if it must stop now)",
		c.Name, serial, c.NotAfter.UTC().Format(time.RFC3339))
}

// IssueToken makes a one-time enrollment token for client, stores its hash
// and returns the encoded token. A client that is enrolled, active or
// revoked, gets one only with opts.Replace (ErrClientExists otherwise,
// with ReplaceNote's explanation): a token for an existing name hands that
// name, with its repositories, to whoever redeems it.
func (a *Admin) IssueToken(ctx context.Context, client string, opts TokenOptions) (*IssuedToken, error) {
	if err := pki.ValidateClientName(client); err != nil {
		return nil, err
	}
	if opts.TTL == 0 {
		opts.TTL = DefaultTokenTTL
	}
	var replaces *serverdb.Client
	existing, err := a.DB.Client(ctx, client)
	switch {
	case err == nil && !opts.Replace:
		return nil, fmt.Errorf("%w: %s; to issue a token anyway use --replace: %s", ErrClientExists, client, ReplaceNote(existing))
	case err == nil:
		replaces = &existing
	case !errors.Is(err, serverdb.ErrNotFound):
		return nil, err
	}
	ca, err := pki.LoadCA(a.Dir)
	if err != nil {
		return nil, err
	}
	now := a.Now()
	tok, err := ca.IssueToken(ctx, a.DB.Tokens(), client, opts.TTL, now)
	if err != nil {
		return nil, err
	}
	s, err := tok.Encode()
	if err != nil {
		return nil, err
	}
	exp := now.Add(opts.TTL)
	detail := "expires=" + exp.UTC().Format(time.RFC3339)
	if replaces != nil {
		detail += " replace=true"
	}
	if err := a.DB.LogEvent(ctx, serverdb.Event{Time: now, Client: client, Action: serverdb.ActionToken, Detail: detail}); err != nil {
		return nil, err
	}
	return &IssuedToken{Token: s, Expires: exp, Replaces: replaces}, nil
}

// Revoke revokes every certificate of client.
func (a *Admin) Revoke(ctx context.Context, client, reason string) error {
	if reason == "" {
		reason = "revoked by the administrator"
	}
	return a.DB.RevokeClient(ctx, client, a.Now(), reason)
}

// Clients lists the enrolled clients.
func (a *Admin) Clients(ctx context.Context) ([]serverdb.Client, error) { return a.DB.Clients(ctx) }

// PolicyChange is a change of a client's policy; nil fields stay as they are.
type PolicyChange struct {
	AllowDelete *bool
	Quota       *int64 // bytes; 0: none
	// MaxObjects and MaxRepos cap the client's objects and repositories;
	// 0: the server's defaults (server.DefaultMaxObjects, DefaultMaxRepos).
	MaxObjects, MaxRepos *int64
}

// SetClientPolicy applies ch to client; each change is audit-logged.
func (a *Admin) SetClientPolicy(ctx context.Context, client string, ch PolicyChange) (serverdb.Client, error) {
	c, err := a.DB.Client(ctx, client)
	if err != nil {
		return serverdb.Client{}, err
	}
	if ch.AllowDelete != nil {
		if err := a.DB.SetAllowDelete(ctx, client, *ch.AllowDelete, a.Now()); err != nil {
			return serverdb.Client{}, err
		}
	}
	if ch.Quota != nil {
		if err := a.DB.SetQuota(ctx, client, *ch.Quota, a.Now()); err != nil {
			return serverdb.Client{}, err
		}
	}
	if ch.MaxObjects != nil || ch.MaxRepos != nil {
		objects, repos := c.MaxObjects, c.MaxRepos
		if ch.MaxObjects != nil {
			objects = *ch.MaxObjects
		}
		if ch.MaxRepos != nil {
			repos = *ch.MaxRepos
		}
		if err := a.DB.SetCountLimits(ctx, client, objects, repos, a.Now()); err != nil {
			return serverdb.Client{}, err
		}
	}
	return a.DB.Client(ctx, client)
}

// TLSReport is the refused-handshake summary of `coffer server tls-report`.
type TLSReport struct {
	Days []tlspolicy.DaySummary `json:"days"`
	// SelfScanExcluded counts the refusals of the server's own scans, left out.
	SelfScanExcluded int `json:"self_scan_excluded"`
	// Alerts are the self-audit's alerts in the period.
	Alerts []Alert `json:"alerts,omitempty"`
}

// Alert is one alert of the TLS self-audit.
type Alert struct {
	Time    time.Time `json:"time"`
	Message string    `json:"message"`
}

// TLSReport summarises the refused handshakes and requests of the last
// days days (UTC, today included) against the configured policy, without
// the server's own self-scans.
func (a *Admin) TLSReport(ctx context.Context, days int) (*TLSReport, error) {
	if days < 1 {
		return nil, fmt.Errorf("days must be at least 1, not %d", days)
	}
	now := a.Now()
	since := now.UTC().Truncate(24*time.Hour).AddDate(0, 0, -(days - 1))
	recs, err := a.DB.Refusals(ctx, since)
	if err != nil {
		return nil, err
	}
	// A scan recorded just before midnight may have refusals after it.
	events, err := a.DB.Events(ctx, since.Add(-time.Hour), 0)
	if err != nil {
		return nil, err
	}
	scans := map[string]bool{}
	rep := &TLSReport{}
	for _, e := range events {
		switch e.Action {
		case serverdb.ActionSelfScan:
			scans[e.Detail] = true
		case serverdb.ActionAlert:
			if !e.Time.Before(since) {
				rep.Alerts = append(rep.Alerts, Alert{Time: e.Time, Message: e.Detail})
			}
		}
	}
	kept := recs[:0]
	for _, r := range recs {
		if server.IsSelfScanSNI(r.SNI) && scans[r.SNI] {
			rep.SelfScanExcluded++
			continue
		}
		kept = append(kept, r)
	}
	rep.Days = a.Settings.Policy.Summarize(kept, days, now)
	return rep, nil
}
