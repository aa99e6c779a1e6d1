package main

import (
	"context"
	"os"
	"path/filepath"

	"github.com/coffer-backup/coffer/internal/pki"
	"github.com/coffer-backup/coffer/internal/storage"
	"github.com/coffer-backup/coffer/internal/storage/remote"
	"github.com/coffer-backup/coffer/internal/tlspolicy"
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
// the client's enrolled identity; only the pinned CA is trusted.
func openRemoteStorage(ctx context.Context, loc string, create bool) (storage.Storage, error) {
	id, err := pki.LoadIdentity(identityDir())
	if err != nil {
		return nil, err
	}
	conf := tlspolicy.Default().ClientConfig(id.TLSCertificate(), id.CAPool(), "")
	if create {
		return remote.Create(ctx, loc, conf)
	}
	return remote.Open(ctx, loc, conf)
}
