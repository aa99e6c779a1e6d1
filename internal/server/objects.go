package server

import (
	"context"
	"fmt"

	"github.com/coffer-backup/coffer/internal/atrest"
	"github.com/coffer-backup/coffer/internal/server/objstore"
	"github.com/coffer-backup/coffer/internal/server/state"
)

// ErrCorrupt is wrapped by every error of a stored object that does not
// verify: bit rot, truncation, tampering, or a file moved to another name.
var ErrCorrupt = atrest.ErrCorrupt

// OpenObjects opens the objects of the state directory dir where its
// configuration keeps them (the objects directory, or the bucket of
// server init --storage), sealed with key; the caller closes them. A
// state directory without its objects directory fails with an error
// wrapping fs.ErrNotExist.
func OpenObjects(ctx context.Context, dir string, key *atrest.Key) (*objstore.Store, error) {
	st, err := state.LoadSettings(dir)
	if err != nil {
		return nil, err
	}
	store, err := objstore.OpenState(ctx, dir, key, st.Storage, false)
	if err != nil {
		return nil, fmt.Errorf("open the objects: %w", err)
	}
	return store, nil
}

// OpenObjectsDir is OpenObjects with the at-rest key of dir, loaded with
// the same permission check as New.
func OpenObjectsDir(ctx context.Context, dir string) (*objstore.Store, error) {
	key, err := state.LoadKey(dir)
	if err != nil {
		return nil, err
	}
	return OpenObjects(ctx, dir, key)
}
