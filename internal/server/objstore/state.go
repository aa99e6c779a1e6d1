package objstore

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/coffer-backup/coffer/internal/atrest"
	"github.com/coffer-backup/coffer/internal/storage/s3"
)

// CAFile, in a state directory, holds PEM certificates that verify the
// S3 endpoint besides the system's (server init --cacert copies them
// there, so a copy of the directory carries them).
const CAFile = "storage-ca.pem"

// ParseLocation checks an object storage location as the server's
// configuration records it: "s3:http(s)://HOST[:PORT]/BUCKET[/PREFIX]".
func ParseLocation(location string) (s3.Location, error) {
	rest, ok := strings.CutPrefix(location, s3.Scheme+":")
	if !ok {
		return s3.Location{}, fmt.Errorf("%w: object storage %q: want s3:https://HOST[:PORT]/BUCKET[/PREFIX]", s3.ErrLocation, location)
	}
	return s3.ParseLocation(rest)
}

// Probe opens the bucket of location with the credentials of the
// environment and caFile's CA certificates ("": the system's only),
// making the bucket if it is missing; the caller closes the store.
func Probe(ctx context.Context, location, caFile string) (*Store, error) {
	if _, err := ParseLocation(location); err != nil {
		return nil, err
	}
	cfg, err := s3.ConfigFromEnv(strings.TrimPrefix(location, s3.Scheme+":"), os.Getenv, caFile)
	if err != nil {
		return nil, err
	}
	return OpenBucket(ctx, cfg, nil, true)
}

// OpenState opens the objects of the state directory dir: in the bucket
// of location when it is not "" (credentials from the AWS_* environment
// or the shared credentials file, never from the configuration), else in
// dir's objects directory (which must exist). create makes a missing
// bucket.
func OpenState(ctx context.Context, dir string, key *atrest.Key, location string, create bool) (*Store, error) {
	if location == "" {
		return OpenDir(dir, key)
	}
	if _, err := ParseLocation(location); err != nil {
		return nil, err
	}
	ca := filepath.Join(dir, CAFile)
	if _, err := os.Stat(ca); errors.Is(err, fs.ErrNotExist) {
		ca = ""
	} else if err != nil {
		return nil, err
	}
	cfg, err := s3.ConfigFromEnv(strings.TrimPrefix(location, s3.Scheme+":"), os.Getenv, ca)
	if err != nil {
		return nil, err
	}
	return OpenBucket(ctx, cfg, key, create)
}
