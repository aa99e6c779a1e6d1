package objstore

import (
	"context"
	"errors"
	"io"
	"strings"
	"sync"

	"github.com/coffer-backup/coffer/internal/atrest"
	"github.com/coffer-backup/coffer/internal/storage"
	"github.com/coffer-backup/coffer/internal/storage/retry"
	"github.com/coffer-backup/coffer/internal/storage/s3"
)

// Keys of a bucket store, below its prefix.
const (
	// RepoMarker is the empty object PREFIX/CLIENT/REPO/.repository that
	// makes a repository exist before its client saves the config, as a
	// local repository's directory does. Written once (If-None-Match: *),
	// so of two servers creating the same repository one gets ErrExists.
	RepoMarker = ".repository"
	// TrashPrefix holds the trash: PREFIX/.trash/CLIENT/REPO/<deleted, Unix
	// ns>/<object's path>. No client name starts with '.'.
	TrashPrefix = ".trash/"
)

// bucketTree keeps the spaces in a bucket: the repositories under the
// prefix, each in the repository layout, and the trash under .trash/.
type bucketTree struct {
	b *s3.Bucket
	// known holds the repositories found to exist: the server never
	// removes one, so the bucket need not be asked again.
	known sync.Map
}

// OpenBucket opens the objects kept in the bucket of cfg.Location, below
// its prefix, making the bucket when create is true and it is missing.
func OpenBucket(ctx context.Context, cfg s3.Config, key *atrest.Key, create bool) (*Store, error) {
	b, err := s3.OpenBucket(ctx, cfg, create)
	if err != nil {
		return nil, err
	}
	return &Store{b: &bucketTree{b: b}, key: key}, nil
}

func (t *bucketTree) location() string { return t.b.Location() }

func (t *bucketTree) close() error { return t.b.Close() }

func (t *bucketTree) key(sp space, rel string) string {
	if sp == trashSpace {
		return TrashPrefix + rel
	}
	return rel
}

func (t *bucketTree) openRepo(ctx context.Context, rel string) (storage.Storage, error) {
	if _, ok := t.known.Load(rel); !ok {
		if _, err := t.b.Stat(ctx, rel+"/"+RepoMarker); errors.Is(err, storage.ErrNotFound) {
			return nil, storage.ErrNoRepository
		} else if err != nil {
			return nil, err
		}
		t.known.Store(rel, true)
	}
	return newRetriedSaves(t.b.Repository(rel)), nil
}

// retriedSaves is a repository in the bucket whose saves go through the
// retry decorator: an S3 server may answer a conditional write that lost
// a race before it has read the whole body and reset the connection (seen
// with versitygw), which a retry turns into the answer it meant — the
// object exists, or is this one. Its other calls go to it directly, so
// that atrest still finds LoadPrefix.
type retriedSaves struct {
	*s3.S3
	saves storage.Storage
}

func newRetriedSaves(r *s3.S3) retriedSaves {
	return retriedSaves{S3: r, saves: retry.New(r, retry.Options{})}
}

// Save implements storage.Storage, retried.
func (r retriedSaves) Save(ctx context.Context, h storage.Handle, data []byte) error {
	return r.saves.Save(ctx, h, data)
}

// SaveStream implements storage.StreamSaver, retried.
func (r retriedSaves) SaveStream(ctx context.Context, h storage.Handle, src io.WriterTo, size int64) error {
	return r.saves.(storage.StreamSaver).SaveStream(ctx, h, src, size)
}

func (t *bucketTree) createRepo(ctx context.Context, rel string) error {
	if err := t.b.PutNew(ctx, rel+"/"+RepoMarker, nil); err != nil {
		return err
	}
	t.known.Store(rel, true)
	return nil
}

func (t *bucketTree) dirs(ctx context.Context, dir string) ([]string, error) {
	if dir != "" {
		dir += "/"
	}
	var out []string
	err := t.b.List(ctx, dir, false, func(k s3.Key) error {
		if k.Dir {
			out = append(out, strings.TrimSuffix(k.Name[len(dir):], "/"))
		}
		return nil
	})
	return out, err
}

func (t *bucketTree) walk(ctx context.Context, sp space, dir string, fn func(File) error) error {
	prefix := t.key(sp, "")
	listed := prefix + dir
	if dir != "" {
		listed += "/"
	}
	return t.b.List(ctx, listed, true, func(k s3.Key) error {
		rel := k.Name[len(prefix):]
		if sp == objectSpace && (strings.HasPrefix(k.Name, TrashPrefix) || strings.HasSuffix(rel, "/"+RepoMarker)) {
			return nil
		}
		return fn(File{Path: rel, Size: k.Size, ModTime: k.ModTime, Regular: true})
	})
}

func (t *bucketTree) stat(ctx context.Context, sp space, rel string) (File, error) {
	k, err := t.b.Stat(ctx, t.key(sp, rel))
	if err != nil {
		return File{}, err
	}
	return File{Path: rel, Size: k.Size, ModTime: k.ModTime, Regular: true}, nil
}

// move copies the object and then deletes the source: a crash between
// the two leaves it in both places, never in neither.
func (t *bucketTree) move(ctx context.Context, from space, src string, to space, dst string) error {
	if err := t.b.Copy(ctx, t.key(from, src), t.key(to, dst)); err != nil {
		return err
	}
	return t.b.Remove(ctx, t.key(from, src))
}

func (t *bucketTree) remove(ctx context.Context, sp space, rel string) error {
	if _, err := t.b.Stat(ctx, t.key(sp, rel)); err != nil {
		return err
	}
	return t.b.Remove(ctx, t.key(sp, rel))
}

func (t *bucketTree) tidy(space, string) {}

func (t *bucketTree) forget(string, storage.Handle) {}
