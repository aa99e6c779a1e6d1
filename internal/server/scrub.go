package server

import (
	"context"
	"errors"
	"io/fs"
	"path/filepath"

	"github.com/coffer-backup/coffer/internal/atrest"
	"github.com/coffer-backup/coffer/internal/server/objstore"
	"github.com/coffer-backup/coffer/internal/storage"
)

// Report is what Scrub found.
type Report struct {
	Objects int      // objects that verified
	Bytes   int64    // their content bytes
	Damaged []Damage // objects that did not
	Stray   []string // files in the object tree that are not objects (paths relative to the state directory, or keys relative to the bucket's prefix)
}

// Damage is one object that failed verification.
type Damage struct {
	Path   string // relative to the state directory, or a key relative to the bucket's prefix
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
	return scrub(ctx, s.store)
}

// ScrubDir scrubs the objects of state directory dir without starting a
// server, so it can run beside a running one (it only reads, once the
// layout is current). It loads the at-rest key with the same permission
// check as New.
func ScrubDir(ctx context.Context, dir string) (Report, error) {
	st, err := OpenObjectsDir(ctx, dir)
	if errors.Is(err, fs.ErrNotExist) {
		return Report{}, nil // no object tree: nothing stored yet
	}
	if err != nil {
		return Report{}, err
	}
	defer func() { _ = st.Close() }()
	if _, err := st.MigrateLayout(ctx); err != nil {
		return Report{}, err
	}
	return scrub(ctx, st)
}

func scrub(ctx context.Context, st *objstore.Store) (Report, error) {
	var rep Report
	local := !st.InBucket()
	rel := func(p string) string {
		if local {
			return filepath.Join(objstore.ObjectsDir, filepath.FromSlash(p))
		}
		return p
	}
	err := st.Walk(ctx, "", "", func(o objstore.Object) error {
		if !o.OK {
			rep.Stray = append(rep.Stray, rel(o.Path))
			return nil
		}
		size, err := verify(ctx, st, o.NS, o.Handle)
		if errors.Is(err, storage.ErrNotFound) {
			return nil // removed meanwhile
		}
		if err != nil {
			rep.Damaged = append(rep.Damaged, Damage{Path: rel(o.Path), Client: o.NS.Client, Repo: o.NS.Repo, Object: o.Handle.String(), Reason: err.Error()})
			return nil
		}
		rep.Objects++
		rep.Bytes += size
		return nil
	})
	return rep, err
}

func verify(ctx context.Context, st *objstore.Store, ns atrest.Namespace, h storage.Handle) (int64, error) {
	s, err := st.Open(ctx, ns.Client, ns.Repo)
	if err != nil {
		return 0, err
	}
	defer func() { _ = s.Close() }()
	return s.Verify(ctx, h)
}
