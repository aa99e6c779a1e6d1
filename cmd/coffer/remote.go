package main

import (
	"context"
	"fmt"

	"github.com/coffer-backup/coffer/internal/storage"
)

// openRemoteStorage opens a repository on a coffer server.
func openRemoteStorage(_ context.Context, loc string, _ bool) (storage.Storage, error) {
	return nil, fmt.Errorf("repository %s: unsupported location scheme", loc)
}
