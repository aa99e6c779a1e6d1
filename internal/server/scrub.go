package server

import (
	"context"
	"errors"
	"io/fs"
	"path/filepath"

	"github.com/coffer-backup/coffer/internal/atrest"
	"github.com/coffer-backup/coffer/internal/server/state"
	"github.com/coffer-backup/coffer/internal/storage"
)

// Report is what Scrub found.
type Report struct {
	Objects int      // objects that verified
	Bytes   int64    // their content bytes
	Damaged []Damage // objects that did not
	Stray   []string // files in the object tree that are not objects (paths relative to the state directory)
}

// Damage is one object that failed verification.
type Damage struct {
	Path   string // relative to the state directory
	Client string
	Repo   string
	Object string // kind/name
	Reason string
}

// Scrub reads back every stored object and verifies it completely: header
// MAC, segment table hash, each segment's hash and GCM tag, and the content
// hash. Damage is reported by path; the error is only for a failure to walk
// the object tree.
func (s *Server) Scrub(ctx context.Context) (Report, error) {
	return s.store.scrub(ctx)
}

// ScrubDir scrubs the state directory dir without starting a server, so it
// can run beside a running one (it only reads, once the layout is current).
// It loads the at-rest key with the same permission check as New.
func ScrubDir(ctx context.Context, dir string) (Report, error) {
	key, err := state.LoadKey(dir)
	if err != nil {
		return Report{}, err
	}
	st, err := openObjectStore(dir, key)
	if errors.Is(err, fs.ErrNotExist) {
		return Report{}, nil // no object tree: nothing stored yet
	}
	if err != nil {
		return Report{}, err
	}
	defer func() { _ = st.close() }()
	if _, err := st.migrateLayout(ctx); err != nil {
		return Report{}, err
	}
	return st.scrub(ctx)
}

func (s *objectStore) scrub(ctx context.Context) (Report, error) {
	var rep Report
	rel := func(p string) string { return filepath.Join(state.ObjectsDir, filepath.FromSlash(p)) }
	err := s.walk(ctx, ".", func(path string, d fs.DirEntry) error {
		ns, h, ok := s.parseObjectPath(path)
		if !ok || !d.Type().IsRegular() {
			rep.Stray = append(rep.Stray, rel(path))
			return nil
		}
		size, err := s.verify(ctx, ns, h)
		if errors.Is(err, storage.ErrNotFound) {
			return nil // removed meanwhile
		}
		if err != nil {
			rep.Damaged = append(rep.Damaged, Damage{Path: rel(path), Client: ns.Client, Repo: ns.Repo, Object: h.String(), Reason: err.Error()})
			return nil
		}
		rep.Objects++
		rep.Bytes += size
		return nil
	})
	return rep, err
}

func (s *objectStore) verify(ctx context.Context, ns atrest.Namespace, h storage.Handle) (int64, error) {
	st, err := s.open(ns.Client, ns.Repo)
	if err != nil {
		return 0, err
	}
	defer func() { _ = st.Close() }()
	return st.Verify(ctx, h)
}
