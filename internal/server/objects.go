package server

import (
	"context"
	"fmt"
	"os"

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

// ProbeStorage checks that the object storage location (s3:...) answers
// with the credentials of the environment, making its bucket if missing,
// and returns the PEM certificates of caFile ("": none, nil) for the
// state directory to keep.
func ProbeStorage(ctx context.Context, location, caFile string) ([]byte, error) {
	var pem []byte
	if caFile != "" {
		var err error
		if pem, err = os.ReadFile(caFile); err != nil { // #nosec G304 -- the CA file the admin named
			return nil, fmt.Errorf("CA certificates: %w", err)
		}
	}
	st, err := objstore.Probe(ctx, location, caFile)
	if err != nil {
		return nil, fmt.Errorf("object storage %s: %w", location, err)
	}
	return pem, st.Close()
}
