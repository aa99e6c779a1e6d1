// Package objstore keeps the storage server's objects: every client's
// repositories, each a storage.Storage sealed with the server's at-rest
// key, in the state directory's tree or under a prefix of an S3 bucket.
package objstore

import (
	"context"
	"errors"
	"fmt"
	"path"
	"strings"
	"time"

	"github.com/coffer-backup/coffer/internal/atrest"
	"github.com/coffer-backup/coffer/internal/storage"
	"github.com/coffer-backup/coffer/internal/wire"
)

// ErrCorrupt is wrapped by every error of a stored object that does not
// verify: bit rot, truncation, tampering, or an object moved to another
// name.
var ErrCorrupt = atrest.ErrCorrupt

// space is one of the two trees a backend keeps: the repositories and the
// trash. Paths in a space are '/'-separated and relative to its top.
type space int

const (
	objectSpace space = iota // CLIENT/REPO/<repository layout>
	trashSpace               // CLIENT/REPO/<deleted, Unix ns>/<object's path in the layout>
)

// File is one file (a key in a bucket) of a space.
type File struct {
	Path    string // '/'-separated, relative to the space's top
	Size    int64  // stored (sealed) bytes
	ModTime time.Time
	Regular bool // false for what a directory tree holds besides files (symbolic links...)
}

// backend is where a Store keeps its spaces: a directory tree (local.go)
// or a bucket (bucket.go). Paths are validated by Store before they get
// here. Missing files fail with errors wrapping storage.ErrNotFound.
type backend interface {
	location() string
	// openRepo returns the base storage of the repository CLIENT/REPO
	// (rel), or an error wrapping storage.ErrNoRepository.
	openRepo(ctx context.Context, rel string) (storage.Storage, error)
	// createRepo makes the empty repository rel; storage.ErrExists if
	// it is there.
	createRepo(ctx context.Context, rel string) error
	// dirs lists the names of the directories directly in dir of the
	// object space ("": the top).
	dirs(ctx context.Context, dir string) ([]string, error)
	// walk calls fn for every file at or below dir of sp ("": all); a
	// missing dir has none.
	walk(ctx context.Context, sp space, dir string, fn func(File) error) error
	stat(ctx context.Context, sp space, rel string) (File, error)
	// move moves a file from one space to another, making what dst needs.
	move(ctx context.Context, from space, src string, to space, dst string) error
	remove(ctx context.Context, sp space, rel string) error
	// tidy removes the empty directories at and below dir of sp, where
	// there are directories.
	tidy(sp space, dir string)
	// forget drops what is held open of object h of the repository rel,
	// which was moved out of it by other means than its Remove.
	forget(rel string, h storage.Handle)
	close() error
}

// Store is the server's objects. It is safe for concurrent use.
type Store struct {
	b   backend
	key *atrest.Key
}

// Location says where the objects are: a directory or an S3 location.
func (s *Store) Location() string { return s.b.location() }

// InBucket reports whether the objects are in a bucket (else in a state
// directory).
func (s *Store) InBucket() bool { _, ok := s.b.(*bucketTree); return ok }

// Close releases the backend.
func (s *Store) Close() error { return s.b.close() }

// repoRel validates a client and repository name and joins them.
func repoRel(client, repo string) (string, error) {
	if err := wire.ValidateClientName(client); err != nil {
		return "", err
	}
	if err := wire.ValidateRepo(repo); err != nil {
		return "", err
	}
	return client + "/" + repo, nil
}

// Open returns the storage of a client's repository, sealed with the
// at-rest key; the caller closes it. A missing repository fails with an
// error wrapping storage.ErrNoRepository.
func (s *Store) Open(ctx context.Context, client, repo string) (*atrest.Storage, error) {
	rel, err := repoRel(client, repo)
	if err != nil {
		return nil, err
	}
	base, err := s.b.openRepo(ctx, rel)
	if errors.Is(err, storage.ErrNoRepository) {
		// Not the backend's words, which name where it looked.
		return nil, fmt.Errorf("repository %s: %w", repo, storage.ErrNoRepository)
	}
	if err != nil {
		return nil, fmt.Errorf("repository %s: %w", repo, err)
	}
	return atrest.New(base, s.key, atrest.Namespace{Client: client, Repo: repo}), nil
}

// Create makes a new, empty repository; storage.ErrExists if it is there.
func (s *Store) Create(ctx context.Context, client, repo string) error {
	rel, err := repoRel(client, repo)
	if err != nil {
		return err
	}
	if err := s.b.createRepo(ctx, rel); err != nil {
		if errors.Is(err, storage.ErrExists) {
			return fmt.Errorf("repository %s: %w", repo, storage.ErrExists)
		}
		return fmt.Errorf("create repository %s: %w", repo, err)
	}
	return nil
}

// Clients lists the clients that have repositories.
func (s *Store) Clients(ctx context.Context) ([]string, error) {
	names, err := s.b.dirs(ctx, "")
	if err != nil {
		return nil, fmt.Errorf("list clients: %w", err)
	}
	out := names[:0]
	for _, n := range names {
		if wire.ValidateClientName(n) == nil {
			out = append(out, n)
		}
	}
	return out, nil
}

// Repos lists a client's repositories.
func (s *Store) Repos(ctx context.Context, client string) ([]string, error) {
	if err := wire.ValidateClientName(client); err != nil {
		return nil, err
	}
	names, err := s.b.dirs(ctx, client)
	if err != nil {
		return nil, fmt.Errorf("list repositories of %s: %w", client, err)
	}
	out := names[:0]
	for _, n := range names {
		if wire.ValidateRepo(n) == nil {
			out = append(out, n)
		}
	}
	return out, nil
}

// Object is one file of the object space: a stored object (OK) or a
// stray that is none.
type Object struct {
	File
	NS     atrest.Namespace
	Handle storage.Handle
	OK     bool // Path names an object and the file is a regular one
}

// Walk calls fn for every file of the repositories of client (all
// clients if "") and repo (all of the client's if ""), objects and
// strays alike; symbolic links are reported (not OK), never followed.
func (s *Store) Walk(ctx context.Context, client, repo string, fn func(Object) error) error {
	dir := ""
	if client != "" {
		if err := wire.ValidateClientName(client); err != nil {
			return err
		}
		dir = client
		if repo != "" {
			if err := wire.ValidateRepo(repo); err != nil {
				return err
			}
			dir = client + "/" + repo
		}
	}
	return s.b.walk(ctx, objectSpace, dir, func(f File) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		o := Object{File: f}
		o.NS, o.Handle, o.OK = ParseObjectPath(f.Path)
		o.OK = o.OK && f.Regular
		return fn(o)
	})
}

// Usage is what a client stores: its objects' content bytes, as
// charged (charge gives an object's charge from its content size), its
// object count and its repository count.
type Usage struct {
	Charged, Objects, Repos int64
}

// Usage adds up what a client stores over all its repositories.
func (s *Store) Usage(ctx context.Context, client string, charge func(size int64) int64) (Usage, error) {
	var u Usage
	repos, err := s.Repos(ctx, client)
	if err != nil {
		return u, err
	}
	u.Repos = int64(len(repos))
	err = s.Walk(ctx, client, "", func(o Object) error {
		if !o.OK {
			return nil
		}
		if size, ok := atrest.ContentSize(o.Size); ok {
			u.Charged += charge(size)
			u.Objects++
		}
		return nil
	})
	return u, err
}

// ParseObjectPath turns a path of the object space back into the client,
// repository and handle of an object, or reports that it is not one.
func ParseObjectPath(rel string) (ns atrest.Namespace, h storage.Handle, ok bool) {
	parts := strings.Split(rel, "/")
	switch {
	case len(parts) == 3 && parts[2] == "config":
		h = storage.Handle{Kind: storage.KindConfig, Name: "config"}
	case len(parts) == 4 && parts[2] != string(storage.KindData) && parts[2] != string(storage.KindConfig):
		h = storage.Handle{Kind: storage.Kind(parts[2]), Name: parts[3]}
	case len(parts) == 5 && parts[2] == string(storage.KindData) && shard(parts[4]) == parts[3]:
		h = storage.Handle{Kind: storage.KindData, Name: parts[4]}
	default:
		return ns, h, false
	}
	ns = atrest.Namespace{Client: parts[0], Repo: parts[1]}
	if wire.ValidateClientName(ns.Client) != nil || wire.ValidateRepo(ns.Repo) != nil || storage.ValidateHandle(h) != nil {
		return ns, h, false
	}
	return ns, h, true
}

// LayoutPath is where a repository's layout keeps h, '/'-separated:
// config, KIND/NAME, and packs in data/XY/NAME.
func LayoutPath(h storage.Handle) string {
	switch h.Kind {
	case storage.KindConfig:
		return "config"
	case storage.KindData:
		return path.Join(string(h.Kind), shard(h.Name), h.Name)
	}
	return path.Join(string(h.Kind), h.Name)
}

func shard(name string) string {
	if len(name) < 2 {
		return name
	}
	return name[:2]
}
