package client

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"time"

	"github.com/coffer-backup/coffer/internal/pki/enroll"
	"github.com/coffer-backup/coffer/internal/storage"
	"github.com/coffer-backup/coffer/internal/storage/backends"
	"github.com/coffer-backup/coffer/internal/storage/ratelimit"
	"github.com/coffer-backup/coffer/internal/tlspolicy"
	"github.com/coffer-backup/coffer/internal/wire"
)

// openStorage opens (or, with create, creates) the backend for o.Location
// through the registry of built-in schemes, throttled to o's limits.
func openStorage(ctx context.Context, o *Options, create bool) (storage.Storage, error) {
	st, err := backends.Open(ctx, o.Location, storage.OpenOptions{Create: create, RemoteTLS: o.remoteTLS, CACertFile: o.CACertFile})
	if err != nil {
		return nil, ExplainRemote(err)
	}
	return ratelimit.New(st, ratelimit.Limits{Upload: o.LimitUpload, Download: o.LimitDownload}), nil
}

// remoteTLS gives the TLS configuration for a coffer server at host with
// the client's enrolled identity; only the pinned CA is trusted. A
// certificate past two thirds of its lifetime is renewed first.
func (o *Options) remoteTLS(ctx context.Context, host string) (*tls.Config, error) {
	dir := o.IdentityDir
	id, renewed, err := enroll.RenewIfDue(ctx, dir, host, enroll.Options{})
	switch {
	case id == nil && errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("no client identity in %s: enroll first (coffer enroll --server %s --token-file FILE) or set COFFER_IDENTITY: %w", dir, host, err)
	case id == nil:
		return nil, err
	case err != nil && time.Now().After(id.Cert.NotAfter):
		return nil, fmt.Errorf("the client certificate expired at %s and could not be renewed: %w", id.Cert.NotAfter.Local().Format(time.DateTime), ExplainRemote(err))
	case err != nil:
		o.warnf("could not renew the client certificate (valid until %s): %v", id.Cert.NotAfter.Local().Format(time.DateTime), ExplainRemote(err))
	case renewed:
		o.infof("renewed the client certificate, valid until %s", id.Cert.NotAfter.Local().Format(time.DateTime))
	}
	return tlspolicy.Default().ClientConfig(id.TLSCertificate(), id.CAPool(), ""), nil
}

// The explanations ExplainRemote adds.
const (
	hintRogueServer = "the server's certificate is not from the CA this client enrolled with: refusing to talk to it"
	hintRefused     = "the server refused this client's certificate: it may be revoked or expired; ask the server's admin for a new token"
)

// ExplainRemote adds what a refused identity means to the error: the
// server is not the enrolled one, or it no longer accepts this client. An
// error it already explained is returned as it is.
func ExplainRemote(err error) error {
	var unknown x509.UnknownAuthorityError
	switch {
	case err == nil, strings.Contains(err.Error(), hintRogueServer), strings.Contains(err.Error(), hintRefused):
		return err
	case errors.As(err, &unknown):
		return fmt.Errorf("%w (%s)", err, hintRogueServer)
	case strings.Contains(err.Error(), "remote error: tls: bad certificate"), strings.Contains(err.Error(), "remote error: tls: certificate"),
		errors.Is(err, wire.ErrUnauthenticated):
		return fmt.Errorf("%w (%s)", err, hintRefused)
	}
	return err
}
