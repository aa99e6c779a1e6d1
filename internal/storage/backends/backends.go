// Package backends opens a repository location with the backend its scheme
// names: a path or local:PATH on local disk, coffer://HOST:PORT/REPO on a
// coffer server, s3:https://HOST/BUCKET[/PREFIX] in an S3 bucket.
package backends

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/coffer-backup/coffer/internal/storage"
	"github.com/coffer-backup/coffer/internal/storage/local"
	"github.com/coffer-backup/coffer/internal/storage/remote"
	"github.com/coffer-backup/coffer/internal/storage/retry"
	"github.com/coffer-backup/coffer/internal/storage/s3"
)

// ErrNoRemoteTLS is returned for a coffer:// location opened without
// OpenOptions.RemoteTLS.
var ErrNoRemoteTLS = errors.New("no TLS client configuration for a coffer server")

// builtin is the registry Open uses; it is never changed after New.
var builtin = New()

// New returns a registry holding the built-in backends: storage.SchemeLocal
// (local.Open, or local.Create with OpenOptions.Create) and remote.Scheme
// (remote.Open or remote.Create, with the TLS configuration
// OpenOptions.RemoteTLS returns for the server's HOST:PORT) and s3.Scheme
// (s3.Open or s3.Create with the configuration of s3.ConfigFromEnv,
// wrapped in the retry decorator).
func New() *storage.Registry {
	r := new(storage.Registry)
	r.Register(storage.SchemeLocal, openLocal)
	r.Register(remote.Scheme, openRemote)
	r.Register(s3.Scheme, openS3)
	return r
}

// Open opens (or, with opts.Create, creates) the repository at location
// with the built-in backends: "/abs/path", "./rel", "rel" and "local:PATH"
// on local disk, "coffer://HOST:PORT/REPO" on a coffer server,
// "s3:https://HOST/BUCKET/PREFIX" in an S3 bucket. Any other
// scheme fails with an error wrapping storage.ErrUnknownScheme.
func Open(ctx context.Context, location string, opts storage.OpenOptions) (storage.Storage, error) {
	return builtin.Open(ctx, location, opts)
}

func openLocal(_ context.Context, loc storage.Location, opts storage.OpenOptions) (storage.Storage, error) {
	var (
		l   *local.Local
		err error
	)
	if opts.Create {
		l, err = local.Create(loc.Rest)
	} else {
		l, err = local.Open(loc.Rest)
	}
	if err != nil {
		return nil, err
	}
	return l, nil
}

func openRemote(ctx context.Context, loc storage.Location, opts storage.OpenOptions) (storage.Storage, error) {
	host, _, err := remote.ParseURL(loc.Raw)
	if err != nil {
		return nil, err
	}
	if opts.RemoteTLS == nil {
		return nil, fmt.Errorf("open %s: %w", loc.Raw, ErrNoRemoteTLS)
	}
	conf, err := opts.RemoteTLS(ctx, host)
	if err != nil {
		return nil, err
	}
	var r *remote.Remote
	if opts.Create {
		r, err = remote.Create(ctx, loc.Raw, conf)
	} else {
		r, err = remote.Open(ctx, loc.Raw, conf)
	}
	if err != nil {
		return nil, err
	}
	return r, nil
}

func openS3(ctx context.Context, loc storage.Location, opts storage.OpenOptions) (storage.Storage, error) {
	cfg, err := s3.ConfigFromEnv(loc.Rest, os.Getenv, opts.CACertFile)
	if err != nil {
		return nil, err
	}
	var st *s3.S3
	if opts.Create {
		st, err = s3.Create(ctx, cfg)
	} else {
		st, err = s3.Open(ctx, cfg)
	}
	if err != nil {
		return nil, err
	}
	return retry.New(st, retry.Options{}), nil
}
