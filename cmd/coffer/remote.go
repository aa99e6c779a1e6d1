package main

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/coffer-backup/coffer/internal/pki/enrol"
	"github.com/coffer-backup/coffer/internal/storage"
	"github.com/coffer-backup/coffer/internal/storage/remote"
	"github.com/coffer-backup/coffer/internal/tlspolicy"
	"github.com/coffer-backup/coffer/internal/wire"
)

// identityDir is where `coffer enroll` keeps the client's key and
// certificates: $COFFER_IDENTITY or ~/.config/coffer/identity.
func identityDir() string {
	if d := os.Getenv("COFFER_IDENTITY"); d != "" {
		return d
	}
	if d := os.Getenv("XDG_CONFIG_HOME"); d != "" {
		return filepath.Join(d, "coffer", "identity")
	}
	h, err := os.UserHomeDir()
	if err != nil {
		return "identity"
	}
	return filepath.Join(h, ".config", "coffer", "identity")
}

// openRemoteStorage opens (or creates) a repository on a coffer server with
// the client's enrolled identity; only the pinned CA is trusted. A
// certificate past two thirds of its lifetime is renewed first.
func (g *globalOptions) openRemoteStorage(ctx context.Context, loc string, create bool) (storage.Storage, error) {
	host, _, err := remote.ParseURL(loc)
	if err != nil {
		return nil, err
	}
	dir := identityDir()
	id, renewed, err := enrol.RenewIfDue(ctx, dir, host, enrol.Options{})
	switch {
	case id == nil && errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("no client identity in %s: enrol first (coffer enroll --server %s --token-file FILE) or set COFFER_IDENTITY: %w", dir, host, err)
	case id == nil:
		return nil, err
	case err != nil && time.Now().After(id.Cert.NotAfter):
		return nil, fmt.Errorf("the client certificate expired at %s and could not be renewed: %w", id.Cert.NotAfter.Local().Format(time.DateTime), explainRemote(err))
	case err != nil:
		warnf("could not renew the client certificate (valid until %s): %v", id.Cert.NotAfter.Local().Format(time.DateTime), explainRemote(err))
	case renewed && !g.quiet:
		fmt.Fprintf(os.Stderr, "renewed the client certificate, valid until %s\n", id.Cert.NotAfter.Local().Format(time.DateTime))
	}
	conf := tlspolicy.Default().ClientConfig(id.TLSCertificate(), id.CAPool(), "")
	var st storage.Storage
	if create {
		st, err = remote.Create(ctx, loc, conf)
	} else {
		st, err = remote.Open(ctx, loc, conf)
	}
	if err != nil {
		return nil, explainRemote(err)
	}
	return st, nil
}

// explainRemote adds what a refused identity means to the error: the
// server is not the enrolled one, or it no longer accepts this client.
func explainRemote(err error) error {
	var unknown x509.UnknownAuthorityError
	switch {
	case errors.As(err, &unknown):
		return fmt.Errorf("%w (the server's certificate is not from the CA this client enrolled with: refusing to talk to it)", err)
	case strings.Contains(err.Error(), "remote error: tls: bad certificate"), strings.Contains(err.Error(), "remote error: tls: certificate"),
		errors.Is(err, wire.ErrUnauthenticated):
		return fmt.Errorf("%w (the server refused this client's certificate: it may be revoked or expired; ask the server's admin for a new token)", err)
	}
	return err
}
