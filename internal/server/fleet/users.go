package fleet

import (
	"context"
	"math/big"
	"time"

	"github.com/coffer-backup/coffer/internal/auditlog"
	"github.com/coffer-backup/coffer/internal/pki"

	"github.com/coffer-backup/coffer/internal/fleet/api"
	"github.com/coffer-backup/coffer/internal/serverdb"
)

// DefaultTokenTTL is how long a user's enrollment token stays valid unless
// the request says otherwise.
const DefaultTokenTTL = 15 * time.Minute

// AddUser records a person with a role and a scope and returns a one-time
// enrollment token for it (redeemed with coffer enroll, for a user
// certificate). The token's secret is not kept: only its hash.
func (f *Fleet) AddUser(ctx context.Context, by Principal, req api.UserAdd) (api.UserToken, error) {
	if err := req.Validate(); err != nil {
		return api.UserToken{}, err
	}
	now := f.now()
	if err := f.store.AddUser(ctx, serverdb.User{Name: req.Name, Role: req.Role, Scope: req.Scope, Created: now}, now); err != nil {
		return api.UserToken{}, err
	}
	ttl := DefaultTokenTTL
	if req.TTLSeconds > 0 {
		ttl = time.Duration(req.TTLSeconds) * time.Second
	}
	tok, err := f.ca.IssueUserToken(ctx, f.store.Tokens(), req.Name, ttl, now)
	if err != nil {
		return api.UserToken{}, err
	}
	s, err := tok.Encode()
	if err != nil {
		return api.UserToken{}, err
	}
	f.audit(ctx, by, serverdb.ActionToken, "user:"+req.Name, "expires="+now.Add(ttl).UTC().Format(time.RFC3339))
	return api.UserToken{Name: req.Name, Role: req.Role, Token: s, Expires: now.Add(ttl).UTC().Format(time.RFC3339)}, nil
}

// Users lists the fleet's users.
func (f *Fleet) Users(ctx context.Context) ([]api.User, error) {
	us, err := f.store.Users(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]api.User, 0, len(us))
	for _, u := range us {
		e := api.User{Name: u.Name, Role: u.Role, Scope: u.Scope, Created: u.Created.UTC().Format(time.RFC3339), Enrolled: u.CertSerial != nil}
		if e.Scope == nil {
			e.Scope = []string{}
		}
		if u.CertSerial != nil {
			e.CertExpires = u.NotAfter.UTC().Format(time.RFC3339)
		}
		out = append(out, e)
	}
	return out, nil
}

// RemoveUser removes a user and revokes its certificate, effective on the
// server at once (Config.Changed).
func (f *Fleet) RemoveUser(ctx context.Context, by Principal, name string) error {
	if err := f.store.RemoveUser(ctx, name, f.now(), "removed by "+by.String()); err != nil {
		return err
	}
	f.mu.Lock()
	changed := f.changed
	f.mu.Unlock()
	if changed != nil {
		if err := changed(ctx); err != nil {
			f.log.Warn("refresh after removing a user", "err", err)
		}
	}
	return nil
}

// AddGroup makes an empty group.
func (f *Fleet) AddGroup(ctx context.Context, by Principal, name string) error {
	if err := f.store.AddGroup(ctx, name, f.now()); err != nil {
		return err
	}
	f.audit(ctx, by, serverdb.ActionGroup, "group:"+name, "created")
	return nil
}

// AssignGroup moves clients into group; their policies change with it.
func (f *Fleet) AssignGroup(ctx context.Context, by Principal, group string, clients []string) error {
	if err := f.store.AssignGroup(ctx, group, clients); err != nil {
		return err
	}
	f.audit(ctx, by, serverdb.ActionGroup, "group:"+group, "assigned "+joinClip(clients))
	f.notify(clients)
	return nil
}

func joinClip(names []string) string {
	s := ""
	for i, n := range names {
		if len(s) > 400 {
			return s + " …"
		}
		if i > 0 {
			s += ","
		}
		s += n
	}
	return s
}

// Groups lists the groups and their members.
func (f *Fleet) Groups(ctx context.Context) ([]api.Group, error) {
	gs, err := f.store.Groups(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]api.Group, 0, len(gs))
	for _, g := range gs {
		out = append(out, api.Group{Name: g.Name, Members: g.Members, Created: g.Created.UTC().Format(time.RFC3339)})
	}
	return out, nil
}

// Login records that user opened a connection with its certificate
// (serial), as the server's Config.Login reports it: a "login" entry with
// the user and its role as actor. A user the fleet no longer knows is not
// recorded (its certificate is refused anyway).
func (f *Fleet) Login(ctx context.Context, user string, serial *big.Int) {
	p, err := f.Principal(ctx, pki.KindUser, user, serial)
	if err != nil {
		f.log.Warn("a login by an unknown user", "user", user, "err", err)
		return
	}
	detail := ""
	if serial != nil {
		detail = "serial=" + serial.Text(16)
	}
	f.record(ctx, p, AuditLogin, "user:"+user, auditlog.OutcomeOK, detail)
}

// AuditLogin is the audit action of a person's connection.
const AuditLogin = "login"
