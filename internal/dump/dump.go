// Package dump writes what a snapshot holds to a stream: one file's bytes,
// or a directory as a tar or zip archive, without touching the filesystem.
package dump

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"path"
	"strings"

	"github.com/coffer-backup/coffer/internal/fsmeta"
	"github.com/coffer-backup/coffer/internal/repository"
)

// Sentinel errors, for callers to branch on with errors.Is.
var (
	// ErrNotFound is returned when a path is not in the snapshot.
	ErrNotFound = errors.New("path not found in snapshot")
	// ErrSizeMismatch is returned for a file whose content does not add up
	// to its recorded size (a damaged tree): nothing of it is written.
	ErrSizeMismatch = errors.New("file content does not match its recorded size")
	// ErrUnknownFormat is returned for an archive format other than tar
	// and zip.
	ErrUnknownFormat = errors.New("unknown archive format")
)

// Repo is what dump reads from a repository (satisfied by
// *repository.Repository). Its index must be loaded.
type Repo interface {
	LoadTree(ctx context.Context, id repository.ID) (*repository.Tree, error)
	LoadBlobInto(ctx context.Context, t repository.BlobType, id repository.ID, buf []byte) ([]byte, error)
}

// Lookup returns the node at p (slash-separated, "/" is the root) in the
// tree root. The root itself is returned as a directory node with mode 0755
// and no name. A missing path is ErrNotFound.
func Lookup(ctx context.Context, r Repo, root repository.ID, p string) (*repository.Node, error) {
	clean := path.Clean("/" + p)
	n := &repository.Node{Meta: fsmeta.Meta{Type: fsmeta.TypeDir, Mode: 0o755}, Subtree: &root}
	if clean == "/" {
		return n, nil
	}
	for _, name := range strings.Split(clean[1:], "/") {
		if n.Subtree == nil {
			return nil, fmt.Errorf("%w: %s", ErrNotFound, clean)
		}
		t, err := r.LoadTree(ctx, *n.Subtree)
		if err != nil {
			return nil, err
		}
		n = findChild(t, name)
		if n == nil {
			return nil, fmt.Errorf("%w: %s", ErrNotFound, clean)
		}
	}
	return n, nil
}

func findChild(t *repository.Tree, name string) *repository.Node {
	for _, c := range t.Nodes {
		if string(c.Name) == name {
			return c
		}
	}
	return nil
}

// contentSize adds up a file's content items, refusing a total that
// overflows or differs from the recorded size.
func contentSize(n *repository.Node) (int64, error) {
	var total uint64
	for _, c := range n.Content {
		add := c.Size + c.Hole
		if add < c.Size || total+add < total {
			return 0, fmt.Errorf("%w: %s", ErrSizeMismatch, n.Name)
		}
		total += add
	}
	if total > math.MaxInt64 || int64(total) != n.Size { // #nosec G115 -- checked against MaxInt64
		return 0, fmt.Errorf("%w: %s holds %d bytes, records %d", ErrSizeMismatch, n.Name, total, n.Size)
	}
	return n.Size, nil
}

// zeros is written for holes of sparse files.
var zeros = make([]byte, 64<<10)

// Content writes a regular file's bytes to w, one blob at a time, with the
// holes of a sparse file as zeros. It first checks that the content adds up
// to the recorded size, so that an archive header never lies.
func Content(ctx context.Context, r Repo, n *repository.Node, w io.Writer) error {
	if _, err := contentSize(n); err != nil {
		return err
	}
	var buf []byte
	return writeContent(ctx, r, n, w, &buf)
}

// writeContent streams n's content, reusing *buf for blobs.
func writeContent(ctx context.Context, r Repo, n *repository.Node, w io.Writer, buf *[]byte) error {
	for _, c := range n.Content {
		if c.ID == nil {
			if err := writeZeros(w, c.Hole); err != nil {
				return err
			}
			continue
		}
		b, err := r.LoadBlobInto(ctx, repository.DataBlob, *c.ID, *buf)
		if err != nil {
			return fmt.Errorf("%s: %w", n.Name, err)
		}
		if uint64(len(b)) != c.Size {
			return fmt.Errorf("%w: %s: blob %s holds %d bytes, tree says %d", ErrSizeMismatch, n.Name, c.ID.Short(), len(b), c.Size)
		}
		if _, err := w.Write(b); err != nil {
			return err
		}
		if cap(b) > cap(*buf) {
			*buf = b
		}
		if err := writeZeros(w, c.Hole); err != nil {
			return err
		}
	}
	return nil
}

func writeZeros(w io.Writer, n uint64) error {
	for n > 0 {
		k := min(n, uint64(len(zeros)))
		if _, err := w.Write(zeros[:k]); err != nil {
			return err
		}
		n -= k
	}
	return nil
}

// Format is an archive format for directories.
type Format string

// The archive formats.
const (
	Tar Format = "tar"
	Zip Format = "zip"
)

// ParseFormat returns the format named s.
func ParseFormat(s string) (Format, error) {
	switch f := Format(s); f {
	case Tar, Zip:
		return f, nil
	}
	return "", fmt.Errorf("%w %q (want tar or zip)", ErrUnknownFormat, s)
}

// entryWriter is one archive format.
type entryWriter interface {
	// entry writes one node named name (relative, a directory's name ends
	// in "/"), with content for regular files.
	entry(ctx context.Context, name string, n *repository.Node, content func(io.Writer) error) error
	Close() error
}

// Archive writes the node n found at p (and, for a directory, everything
// below it) to w as an archive. Entry names are paths relative to the
// snapshot root, as restic writes them. Memory stays bounded by one tree
// per directory level and one blob.
func Archive(ctx context.Context, r Repo, n *repository.Node, p string, f Format, w io.Writer) error {
	var ew entryWriter
	switch f {
	case Tar:
		ew = newTarWriter(w)
	case Zip:
		ew = newZipWriter(w)
	default:
		return fmt.Errorf("%w %q", ErrUnknownFormat, f)
	}
	a := &archiver{r: r, w: ew}
	rel := strings.TrimPrefix(path.Clean("/"+p), "/")
	var err error
	if rel == "" && n.Type == fsmeta.TypeDir {
		err = a.tree(ctx, "", *n.Subtree) // the root has no entry of its own
	} else {
		err = a.node(ctx, rel, n)
	}
	if err != nil {
		return err
	}
	return ew.Close()
}

type archiver struct {
	r   Repo
	w   entryWriter
	buf []byte
}

func (a *archiver) node(ctx context.Context, name string, n *repository.Node) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	switch n.Type {
	case fsmeta.TypeDir:
		if err := a.w.entry(ctx, name+"/", n, nil); err != nil {
			return err
		}
		if n.Subtree == nil {
			return fmt.Errorf("%w: directory %s has no subtree", repository.ErrBadTree, name)
		}
		return a.tree(ctx, name+"/", *n.Subtree)
	case fsmeta.TypeFile:
		if _, err := contentSize(n); err != nil {
			return err
		}
		return a.w.entry(ctx, name, n, func(w io.Writer) error {
			return writeContent(ctx, a.r, n, w, &a.buf)
		})
	}
	return a.w.entry(ctx, name, n, nil)
}

func (a *archiver) tree(ctx context.Context, prefix string, id repository.ID) error {
	t, err := a.r.LoadTree(ctx, id)
	if err != nil {
		return err
	}
	for _, c := range t.Nodes {
		if err := a.node(ctx, prefix+string(c.Name), c); err != nil {
			return err
		}
	}
	return nil
}
