package state

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/coffer-backup/coffer/internal/fleet/policy"
	"github.com/coffer-backup/coffer/internal/pki"
	"github.com/coffer-backup/coffer/internal/serverdb"
)

// The first administrator's identity directory inside a state directory,
// and its user name.
const (
	AdminDir  = "admin"
	AdminUser = "admin"
	// RoleAdmin is the role of the first administrator (internal/server/fleet's
	// RoleAdmin).
	RoleAdmin = "admin"
)

// EnsurePolicyKey loads dir/policy.key, making it (and policy.pub) when the
// state directory has none: one made before the fleet existed. created
// says whether it was made now.
func EnsurePolicyKey(dir string) (key ed25519.PrivateKey, created bool, err error) {
	key, err = policy.LoadKey(dir)
	if err == nil {
		return key, false, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, false, err
	}
	key, err = policy.GenerateKey(dir)
	if err != nil {
		return nil, false, err
	}
	return key, true, nil
}

// AdminOptions configure EnsureAdmin.
type AdminOptions struct {
	// Server is the HOST:PORT written to the identity's server file.
	Server string
	// PolicyPub is the policy key pinned in the identity (policy.pub).
	PolicyPub ed25519.PublicKey
	// TTL is the certificate's lifetime.
	TTL time.Duration
	Now time.Time
}

// EnsureAdmin writes the first administrator's identity to dir/admin
// (client.key 0600, client.crt, ca.crt, server, policy.pub; certificate
// SAN urn:coffer:user:admin, role admin in db) when the fleet has no
// enrolled administrator: at server init, and at server run for a state
// directory made before the fleet existed (or whose administrators were
// all removed: the owner of the state directory holds the CA key anyway).
// It reports whether it wrote one. A user "admin" of another role is
// refused rather than promoted.
func EnsureAdmin(ctx context.Context, dir string, db serverdb.DB, ca *pki.CA, opts AdminOptions) (bool, error) {
	users, err := db.Users(ctx)
	if err != nil {
		return false, err
	}
	for _, u := range users {
		if u.Role == RoleAdmin && u.CertSerial != nil {
			return false, nil
		}
	}
	existing, err := db.User(ctx, AdminUser)
	switch {
	case errors.Is(err, serverdb.ErrNotFound):
		if err := db.AddUser(ctx, serverdb.User{Name: AdminUser, Role: RoleAdmin, Created: opts.Now}, opts.Now); err != nil {
			return false, fmt.Errorf("first administrator: %w", err)
		}
	case err != nil:
		return false, err
	case existing.Role != RoleAdmin:
		return false, fmt.Errorf("first administrator: user %q exists with role %s", AdminUser, existing.Role)
	}
	key, err := pki.NewClientKey()
	if err != nil {
		return false, err
	}
	csr, err := pki.NewCSR(key, AdminUser)
	if err != nil {
		return false, err
	}
	der, serial, err := ca.SignUser(csr, AdminUser, opts.TTL, opts.Now)
	if err != nil {
		return false, fmt.Errorf("first administrator: %w", err)
	}
	keyPEM, err := pki.EncodeKeyPEM(key)
	if err != nil {
		return false, err
	}
	adminDir := filepath.Join(dir, AdminDir)
	if err := pki.WriteIdentity(adminDir, keyPEM, pki.EncodeCertPEM(der), ca.CertPEM()); err != nil {
		return false, fmt.Errorf("first administrator: %w", err)
	}
	if err := os.Chmod(adminDir, 0o700); err != nil { // #nosec G302 -- a directory: 0700 is owner-only
		return false, fmt.Errorf("first administrator: %w", err)
	}
	if err := pki.WriteServerAddr(adminDir, opts.Server); err != nil {
		return false, fmt.Errorf("first administrator: %w", err)
	}
	if err := policy.WritePublicKey(adminDir, opts.PolicyPub); err != nil {
		return false, fmt.Errorf("first administrator: %w", err)
	}
	notAfter := ca.Cert.NotAfter
	if t := opts.Now.Add(opts.TTL); t.Before(notAfter) {
		notAfter = t
	}
	if err := db.EnrollUser(ctx, AdminUser, serial, notAfter, opts.Now); err != nil {
		return false, fmt.Errorf("first administrator: %w", err)
	}
	return true, nil
}

// ServerAddr is the HOST:PORT an identity made on the server records: the
// first name of the server certificate and the port of listen (7443 when
// it names none).
func ServerAddr(names []string, listen string) string {
	host := "localhost"
	if len(names) > 0 {
		host = names[0]
	}
	port := "7443"
	if _, p, err := net.SplitHostPort(listen); err == nil && p != "" {
		port = p
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		port = "7443"
	}
	return net.JoinHostPort(host, port)
}
