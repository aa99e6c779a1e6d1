package server

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
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
	return s.store.scrub(ctx, filepath.Dir(s.store.root))
}

// ScrubDir scrubs the state directory dir without starting a server, so it
// can run beside a running one (it only reads). It loads the at-rest key
// with the same permission check as New.
func ScrubDir(ctx context.Context, dir string) (Report, error) {
	key, err := loadKey(dir)
	if err != nil {
		return Report{}, err
	}
	st := &store{root: filepath.Join(dir, ObjectsDir), tmp: filepath.Join(dir, TempDir), key: key}
	return st.scrub(ctx, dir)
}

func (s *store) scrub(ctx context.Context, base string) (Report, error) {
	var rep Report
	rel := func(p string) string {
		if r, err := filepath.Rel(base, p); err == nil {
			return r
		}
		return p
	}
	err := filepath.WalkDir(s.root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		id, ok := s.parseObjectPath(path)
		if !ok || !d.Type().IsRegular() {
			rep.Stray = append(rep.Stray, rel(path))
			return nil
		}
		size, err := s.verifyFile(path, id)
		if errors.Is(err, fs.ErrNotExist) {
			return nil // removed meanwhile
		}
		if err != nil {
			rep.Damaged = append(rep.Damaged, Damage{Path: rel(path), Client: id.Client, Repo: id.Repo, Object: id.Kind + "/" + id.Name, Reason: err.Error()})
			return nil
		}
		rep.Objects++
		rep.Bytes += size
		return nil
	})
	return rep, err
}

func (s *store) verifyFile(path string, id objectID) (int64, error) {
	f, err := os.Open(path) // #nosec G304 -- a file of the object tree
	if err != nil {
		return 0, err
	}
	defer func() { _ = f.Close() }()
	o, err := openObject(f, s.key, id)
	if err != nil {
		return 0, err
	}
	if err := o.verify(); err != nil {
		return 0, err
	}
	return o.hdr.Size, nil
}
