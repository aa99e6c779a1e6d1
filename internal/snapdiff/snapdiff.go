// Package snapdiff compares two snapshot trees by a merge walk that skips
// subtrees with equal IDs, reporting added, removed and changed paths.
package snapdiff

import (
	"bytes"
	"context"
	"fmt"
	"slices"

	"github.com/coffer-backup/coffer/internal/fsmeta"
	"github.com/coffer-backup/coffer/internal/repository"
)

// Kind says how a path differs.
type Kind byte

// The kinds of change, printed as restic prints them.
const (
	Added       Kind = '+' // only in the second snapshot
	Removed     Kind = '-' // only in the first snapshot
	Modified    Kind = 'M' // content (or symlink target) changed
	Metadata    Kind = 'U' // only metadata changed (mode, owner, times, xattrs, flags)
	TypeChanged Kind = 'T' // a file became a directory, a symlink a file, ...
)

func (k Kind) String() string { return string(rune(k)) }

// MarshalText writes the kind's symbol.
func (k Kind) MarshalText() ([]byte, error) { return []byte{byte(k)}, nil }

// Change is one differing path. Path is slash-separated from the snapshot
// root ("/home/a"); Type is the entry's type in the second snapshot, or in
// the first for removals.
type Change struct {
	Kind Kind        `json:"modifier"`
	Path string      `json:"path"`
	Type fsmeta.Type `json:"type"`
}

// Counts counts entries by type.
type Counts struct {
	Files  int `json:"files"`
	Dirs   int `json:"dirs"`
	Others int `json:"others"`
}

func (c *Counts) add(t fsmeta.Type) {
	switch t {
	case fsmeta.TypeFile:
		c.Files++
	case fsmeta.TypeDir:
		c.Dirs++
	default:
		c.Others++
	}
}

// Stats summarises a diff. Blob figures are the data blobs referenced by
// the changed parts of each tree: those only the second side references
// are added, those only the first references are removed (data shared with
// unchanged subtrees is not looked at, so a moved file can count as both).
type Stats struct {
	Added           Counts `json:"added"`
	Removed         Counts `json:"removed"`
	Modified        int    `json:"changed_files"`
	MetadataChanged int    `json:"metadata_changed"`
	TypeChanged     int    `json:"type_changed"`
	BlobsAdded      int    `json:"blobs_added"`
	BytesAdded      uint64 `json:"bytes_added"`
	BlobsRemoved    int    `json:"blobs_removed"`
	BytesRemoved    uint64 `json:"bytes_removed"`
}

// TreeLoader loads trees; *repository.Repository is one.
type TreeLoader interface {
	LoadTree(ctx context.Context, id repository.ID) (*repository.Tree, error)
}

type differ struct {
	l     TreeLoader
	fn    func(Change) error
	stats Stats
	blobA map[repository.ID]uint64
	blobB map[repository.ID]uint64
}

// Diff compares the trees a and b and calls fn for every differing path, in
// depth-first name order (a directory before its contents). Subtrees with
// the same ID on both sides are not loaded.
func Diff(ctx context.Context, l TreeLoader, a, b repository.ID, fn func(Change) error) (*Stats, error) {
	d := &differ{l: l, fn: fn, blobA: map[repository.ID]uint64{}, blobB: map[repository.ID]uint64{}}
	if a != b {
		if err := d.trees(ctx, "", &a, &b); err != nil {
			return nil, err
		}
	}
	for id, sz := range d.blobB {
		if _, ok := d.blobA[id]; !ok {
			d.stats.BlobsAdded++
			d.stats.BytesAdded += sz
		}
	}
	for id, sz := range d.blobA {
		if _, ok := d.blobB[id]; !ok {
			d.stats.BlobsRemoved++
			d.stats.BytesRemoved += sz
		}
	}
	return &d.stats, nil
}

func (d *differ) load(ctx context.Context, id *repository.ID) (*repository.Tree, error) {
	if id == nil {
		return &repository.Tree{}, nil
	}
	t, err := d.l.LoadTree(ctx, *id)
	if err != nil {
		return nil, fmt.Errorf("load tree %s: %w", id.Short(), err)
	}
	return t, nil
}

// trees merges two directory listings; a nil ID is an empty directory.
func (d *differ) trees(ctx context.Context, prefix string, a, b *repository.ID) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	ta, err := d.load(ctx, a)
	if err != nil {
		return err
	}
	tb, err := d.load(ctx, b)
	if err != nil {
		return err
	}
	i, j := 0, 0
	for i < len(ta.Nodes) || j < len(tb.Nodes) {
		var na, nb *repository.Node
		switch {
		case i == len(ta.Nodes):
			nb = tb.Nodes[j]
			j++
		case j == len(tb.Nodes):
			na = ta.Nodes[i]
			i++
		default:
			switch c := bytes.Compare(ta.Nodes[i].Name, tb.Nodes[j].Name); {
			case c < 0:
				na = ta.Nodes[i]
				i++
			case c > 0:
				nb = tb.Nodes[j]
				j++
			default:
				na, nb = ta.Nodes[i], tb.Nodes[j]
				i++
				j++
			}
		}
		if err := d.node(ctx, prefix, na, nb); err != nil {
			return err
		}
	}
	return nil
}

func (d *differ) emit(k Kind, path string, t fsmeta.Type) error {
	switch k {
	case Added:
		d.stats.Added.add(t)
	case Removed:
		d.stats.Removed.add(t)
	case Modified:
		d.stats.Modified++
	case Metadata:
		d.stats.MetadataChanged++
	case TypeChanged:
		d.stats.TypeChanged++
	}
	return d.fn(Change{Kind: k, Path: path, Type: t})
}

func (d *differ) collect(n *repository.Node, into map[repository.ID]uint64) {
	for _, c := range n.Content {
		if c.ID != nil {
			into[*c.ID] = c.Size
		}
	}
}

// node compares one name present on at least one side.
func (d *differ) node(ctx context.Context, prefix string, a, b *repository.Node) error {
	var name []byte
	if a != nil {
		name = a.Name
	} else {
		name = b.Name
	}
	path := prefix + "/" + string(name)
	switch {
	case a == nil:
		return d.one(ctx, Added, path, b, d.blobB)
	case b == nil:
		return d.one(ctx, Removed, path, a, d.blobA)
	case a.Type != b.Type:
		if err := d.emit(TypeChanged, path, b.Type); err != nil {
			return err
		}
		d.collect(a, d.blobA)
		d.collect(b, d.blobB)
		// The old directory's contents are gone, the new one's are new.
		return d.trees(ctx, path, a.Subtree, b.Subtree)
	case a.Type == fsmeta.TypeDir:
		if !sameMeta(&a.Meta, &b.Meta) {
			if err := d.emit(Metadata, path, b.Type); err != nil {
				return err
			}
		}
		if *a.Subtree == *b.Subtree {
			return nil
		}
		return d.trees(ctx, path, a.Subtree, b.Subtree)
	}
	if !sameContent(a, b) {
		d.collect(a, d.blobA)
		d.collect(b, d.blobB)
		return d.emit(Modified, path, b.Type)
	}
	if !sameMeta(&a.Meta, &b.Meta) {
		return d.emit(Metadata, path, b.Type)
	}
	return nil
}

// one reports a node present on one side only, and everything below it.
func (d *differ) one(ctx context.Context, k Kind, path string, n *repository.Node, blobs map[repository.ID]uint64) error {
	if err := d.emit(k, path, n.Type); err != nil {
		return err
	}
	d.collect(n, blobs)
	if n.Subtree == nil {
		return nil
	}
	t, err := d.load(ctx, n.Subtree)
	if err != nil {
		return err
	}
	for _, c := range t.Nodes {
		if err := d.one(ctx, k, path+"/"+string(c.Name), c, blobs); err != nil {
			return err
		}
	}
	return nil
}

// sameContent compares what a file holds or a symlink points to; special
// files compare their device numbers.
func sameContent(a, b *repository.Node) bool {
	if a.Size != b.Size || a.Rdev != b.Rdev || !bytes.Equal(a.LinkTarget, b.LinkTarget) {
		return false
	}
	return slices.EqualFunc(a.Content, b.Content, func(x, y repository.ContentItem) bool {
		if (x.ID == nil) != (y.ID == nil) || x.Size != y.Size || x.Hole != y.Hole {
			return false
		}
		return x.ID == nil || *x.ID == *y.ID
	})
}

// sameMeta compares the metadata a user sets or sees: mode, owner, mtime,
// inode flags and extended attributes. Access and change times, inode and
// device numbers and link counts change without the entry changing and are
// ignored.
func sameMeta(a, b *fsmeta.Meta) bool {
	return a.Mode == b.Mode && a.UID == b.UID && a.GID == b.GID && a.User == b.User && a.Group == b.Group &&
		a.MTimeNs == b.MTimeNs && a.Flags == b.Flags &&
		slices.EqualFunc(a.Xattrs, b.Xattrs, func(x, y fsmeta.Xattr) bool { return x.Name == y.Name && bytes.Equal(x.Value, y.Value) })
}
