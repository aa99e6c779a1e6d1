package enroll_test

import (
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/coffer-backup/coffer/internal/pki"
	"github.com/coffer-backup/coffer/internal/pki/enroll"
	"github.com/coffer-backup/coffer/internal/server"
	"github.com/coffer-backup/coffer/internal/server/enrollment"
	"github.com/coffer-backup/coffer/internal/server/servertest"
	"github.com/coffer-backup/coffer/internal/serverdb"
)

// startEnrolling runs a real server whose enrollment and renewal are served
// by a enrollment.Enroller issuing certificates valid for ttl.
func startEnrolling(t *testing.T, ttl time.Duration) (*servertest.Env, *enrollment.Enroller) {
	t.Helper()
	enr := &enrollment.Enroller{ClientTTL: ttl}
	env := servertest.Start(t, servertest.Options{Config: server.Config{Enroll: enr, Renew: http.HandlerFunc(enr.Renew)}})
	enr.CA, enr.DB, enr.Changed, enr.Now = env.CA, env.DB, env.Server.Refresh, env.Clock.Now
	enr.Logger = slog.New(slog.DiscardHandler)
	return env, enr
}

func issue(t *testing.T, env *servertest.Env, name string, ttl time.Duration) *pki.Token {
	t.Helper()
	tok, err := env.CA.IssueToken(context.Background(), env.DB.Tokens(), name, ttl, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func events(t *testing.T, env *servertest.Env, action string) []serverdb.Event {
	t.Helper()
	evs, err := env.DB.Events(context.Background(), time.Time{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	var out []serverdb.Event
	for _, e := range evs {
		if e.Action == action {
			out = append(out, e)
		}
	}
	return out
}

func TestEnrollAndUse(t *testing.T) {
	env, _ := startEnrolling(t, time.Hour)
	ctx := context.Background()
	tok := issue(t, env, "alice", time.Minute)
	id, err := enroll.Enroll(ctx, env.Addr, tok, enroll.Options{})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := pki.WriteIdentity(dir, id.KeyPEM, id.CertPEM, id.CAPEM); err != nil {
		t.Fatal(err)
	}
	loaded, err := pki.LoadIdentity(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !loaded.CA.Equal(env.CA.Cert) {
		t.Fatal("identity does not pin the server's CA")
	}
	c, err := env.DB.Client(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if c.CertSerial.Cmp(loaded.Cert.SerialNumber) != 0 {
		t.Fatalf("database serial %x, certificate %x", c.CertSerial, loaded.Cert.SerialNumber)
	}
	// The certificate opens the storage API at once.
	if err := env.Server.VerifyConnection(connState(loaded)); err != nil {
		t.Fatalf("new client refused: %v", err)
	}

	// The token is spent.
	if _, err := enroll.Enroll(ctx, env.Addr, tok, enroll.Options{}); !errors.Is(err, enroll.ErrRefused) {
		t.Fatalf("reused token: %v", err)
	}
	if len(events(t, env, serverdb.ActionEnrollRefused)) != 1 {
		t.Fatal("refused enrollment not in the audit log")
	}
}

func TestEnrollRefusals(t *testing.T) {
	env, _ := startEnrolling(t, time.Hour)
	ctx := context.Background()

	expired := issue(t, env, "bob", time.Minute)
	env.Clock.Advance(2 * time.Minute)
	if _, err := enroll.Enroll(ctx, env.Addr, expired, enroll.Options{Now: env.Clock.Now}); !errors.Is(err, enroll.ErrRefused) {
		t.Fatalf("expired token: %v", err)
	}

	// A token for another CA: the client stops in the handshake and the
	// server never sees a request.
	good := issue(t, env, "carol", time.Hour)
	forged := *good
	forged.CAFingerprint[0] ^= 1
	before := len(events(t, env, serverdb.ActionEnrollRefused))
	if _, err := enroll.Enroll(ctx, env.Addr, &forged, enroll.Options{Now: env.Clock.Now}); !errors.Is(err, pki.ErrFingerprintMismatch) {
		t.Fatalf("forged fingerprint: %v", err)
	}
	if after := len(events(t, env, serverdb.ActionEnrollRefused)); after != before {
		t.Fatal("the server received a request from a client that should have stopped")
	}
	// The genuine token still works.
	if _, err := enroll.Enroll(ctx, env.Addr, good, enroll.Options{Now: env.Clock.Now}); err != nil {
		t.Fatal(err)
	}
	// A token whose secret the server does not know.
	unknown, err := pki.NewToken("dave", env.CA.Fingerprint())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := enroll.Enroll(ctx, env.Addr, unknown, enroll.Options{Now: env.Clock.Now}); !errors.Is(err, enroll.ErrRefused) {
		t.Fatalf("unknown token: %v", err)
	}
	if _, err := enroll.Enroll(ctx, "no-port", good, enroll.Options{}); err == nil {
		t.Fatal("address without port accepted")
	}
}

func TestRenewal(t *testing.T) {
	// Two minutes of validity plus the five-minute backdate: past two
	// thirds of its life at once, so every RenewIfDue renews.
	env, _ := startEnrolling(t, 2*time.Minute)
	ctx := context.Background()
	id, err := enroll.Enroll(ctx, env.Addr, issue(t, env, "erin", time.Minute), enroll.Options{})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := pki.WriteIdentity(dir, id.KeyPEM, id.CertPEM, id.CAPEM); err != nil {
		t.Fatal(err)
	}
	old, err := pki.LoadIdentity(dir)
	if err != nil {
		t.Fatal(err)
	}
	renewed, did, err := enroll.RenewIfDue(ctx, dir, env.Addr, enroll.Options{})
	if err != nil || !did {
		t.Fatalf("RenewIfDue: %v %v", did, err)
	}
	if renewed.Cert.SerialNumber.Cmp(old.Cert.SerialNumber) == 0 || !renewed.Key.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(old.Key.Public()) {
		t.Fatal("renewal did not give a new certificate for the same key")
	}
	// The old certificate is superseded: revoked on the server.
	if err := env.Server.VerifyConnection(connState(old)); !errors.Is(err, pki.ErrRevoked) {
		t.Fatalf("superseded certificate: %v", err)
	}
	if err := env.Server.VerifyConnection(connState(renewed)); err != nil {
		t.Fatalf("renewed certificate: %v", err)
	}
	if _, err := enroll.Renew(ctx, env.Addr, old, enroll.Options{}); err == nil {
		t.Fatal("a superseded certificate renewed")
	}
	if n := len(events(t, env, serverdb.ActionRenew)); n != 1 {
		t.Fatalf("%d renew events", n)
	}
	// A revoked client cannot renew.
	if err := env.DB.RevokeClient(ctx, "erin", time.Now(), "test"); err != nil {
		t.Fatal(err)
	}
	if err := env.Server.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := enroll.Renew(ctx, env.Addr, renewed, enroll.Options{}); err == nil {
		t.Fatal("a revoked client renewed")
	}
}

// A certificate not due for renewal is left alone.
func TestRenewIfDueNotDue(t *testing.T) {
	env, _ := startEnrolling(t, 24*time.Hour)
	ctx := context.Background()
	id, err := enroll.Enroll(ctx, env.Addr, issue(t, env, "frank", time.Minute), enroll.Options{})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := pki.WriteIdentity(dir, id.KeyPEM, id.CertPEM, id.CAPEM); err != nil {
		t.Fatal(err)
	}
	if _, did, err := enroll.RenewIfDue(ctx, dir, "127.0.0.1:1", enroll.Options{}); err != nil || did {
		t.Fatalf("not due: renewed=%v err=%v", did, err)
	}
}

// connState is what crypto/tls hands VerifyConnection for a verified
// client certificate.
func connState(id *pki.Identity) tls.ConnectionState {
	return tls.ConnectionState{PeerCertificates: []*x509.Certificate{id.Cert}, VerifiedChains: [][]*x509.Certificate{{id.Cert, id.CA}}}
}

// A person's certificate renews like a host's: a new certificate for the
// same key naming the same user, the old one revoked, a renew event filed
// under user:NAME; a removed user cannot renew.
func TestUserRenewal(t *testing.T) {
	env, _ := startEnrolling(t, 2*time.Minute) // due at once, as in TestRenewal
	ctx := context.Background()
	if err := env.DB.AddUser(ctx, serverdb.User{Name: "alice", Role: "auditor", Created: time.Now()}, time.Now()); err != nil {
		t.Fatal(err)
	}
	tok, err := env.CA.IssueUserToken(ctx, env.DB.Tokens(), "alice", time.Minute, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	id, err := enroll.Enroll(ctx, env.Addr, tok, enroll.Options{})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := pki.WriteIdentity(dir, id.KeyPEM, id.CertPEM, id.CAPEM); err != nil {
		t.Fatal(err)
	}
	old, err := pki.LoadIdentity(dir)
	if err != nil {
		t.Fatal(err)
	}
	renewed, did, err := enroll.RenewIfDue(ctx, dir, env.Addr, enroll.Options{})
	if err != nil || !did {
		t.Fatalf("RenewIfDue of a user: %v %v", did, err)
	}
	if kind, name, err := pki.PrincipalOf(renewed.Cert); err != nil || kind != pki.KindUser || name != "alice" {
		t.Fatalf("renewed certificate names %s %q (%v)", kind, name, err)
	}
	if renewed.Cert.SerialNumber.Cmp(old.Cert.SerialNumber) == 0 || !renewed.Key.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(old.Key.Public()) {
		t.Fatal("renewal did not give a new certificate for the same key")
	}
	u, err := env.DB.User(ctx, "alice")
	if err != nil || u.CertSerial.Cmp(renewed.Cert.SerialNumber) != 0 || !u.NotAfter.Equal(renewed.Cert.NotAfter) {
		t.Fatalf("the user's record after renewal: %+v %v", u, err)
	}
	if err := env.Server.VerifyConnection(connState(old)); !errors.Is(err, pki.ErrRevoked) {
		t.Fatalf("superseded user certificate: %v", err)
	}
	if err := env.Server.VerifyConnection(connState(renewed)); err != nil {
		t.Fatalf("renewed user certificate: %v", err)
	}
	if evs := events(t, env, serverdb.ActionRenew); len(evs) != 1 || evs[0].Client != "user:alice" {
		t.Fatalf("renew events %+v", evs)
	}
	if _, err := enroll.Renew(ctx, env.Addr, old, enroll.Options{}); err == nil {
		t.Fatal("a superseded user certificate renewed")
	}
	if err := env.DB.RemoveUser(ctx, "alice", time.Now(), "test"); err != nil {
		t.Fatal(err)
	}
	if err := env.Server.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := enroll.Renew(ctx, env.Addr, renewed, enroll.Options{}); err == nil {
		t.Fatal("a removed user renewed")
	}
}
