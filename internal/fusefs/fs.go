package fusefs

import (
	"context"
	"errors"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/coffer-backup/coffer/internal/fsmeta"
	"github.com/coffer-backup/coffer/internal/repository"
	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// Options configure a mount. Zero values: see each field.
type Options struct {
	// Location names the time zone of snapshot directory names (nil: UTC).
	Location *time.Location
	// AllowOther lets users other than the one mounting read the file
	// system (FUSE's allow_other; needs root or user_allow_other).
	AllowOther bool
	// Debug logs every FUSE request.
	Debug bool
}

// New returns the root node of a file system over snaps, reading trees and
// blobs from r.
func New(r Repo, snaps []*repository.Snapshot, o Options) fs.InodeEmbedder {
	loc := o.Location
	if loc == nil {
		loc = time.UTC
	}
	return &dirNode{fsys: &fileSystem{repo: r}, dir: layout(snaps, loc)}
}

// Mount mounts the file system at dir, read-only; it returns once it is
// mounted. Unmount it with the returned server's Unmount.
func Mount(dir string, r Repo, snaps []*repository.Snapshot, o Options) (*fuse.Server, error) {
	ttl := time.Hour // nothing changes under a mount
	return fs.Mount(dir, New(r, snaps, o), &fs.Options{
		EntryTimeout: &ttl, AttrTimeout: &ttl, NegativeTimeout: &ttl,
		MountOptions: fuse.MountOptions{
			FsName: "coffer", Name: "coffer", Options: []string{"ro", "default_permissions"},
			AllowOther: o.AllowOther, DirectMount: true, Debug: o.Debug, MaxReadAhead: 1 << 20,
		},
	})
}

// Serve mounts the file system at dir and serves it until ctx ends or a
// SIGINT or SIGTERM arrives, then unmounts it. mounted, if not nil, is
// called once the mount is ready.
func Serve(ctx context.Context, dir string, r Repo, snaps []*repository.Snapshot, o Options, mounted func()) error {
	srv, err := Mount(dir, r, snaps, o)
	if err != nil {
		return err
	}
	if mounted != nil {
		mounted()
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sig)
	done := make(chan struct{})
	go func() { srv.Wait(); close(done) }()
	select {
	case <-done: // unmounted from outside (umount, fusermount -u)
		return nil
	case <-ctx.Done():
	case <-sig:
	}
	return srv.Unmount()
}

type fileSystem struct {
	repo Repo
}

// errno maps an error to what a FUSE caller sees.
func errno(err error) syscall.Errno {
	if errors.Is(err, context.Canceled) {
		return syscall.EINTR
	}
	return syscall.EIO
}

// dirNode is a directory of the virtual layer.
type dirNode struct {
	fs.Inode
	fsys *fileSystem
	dir  *vdir
}

var (
	_ fs.NodeReaddirer = (*dirNode)(nil)
	_ fs.NodeLookuper  = (*dirNode)(nil)
	_ fs.NodeGetattrer = (*dirNode)(nil)
)

func (d *dirNode) Getattr(_ context.Context, _ fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	out.Mode = fuse.S_IFDIR | 0o555
	setTimes(&out.Attr, d.dir.mtime.UnixNano(), d.dir.mtime.UnixNano(), d.dir.mtime.UnixNano())
	return 0
}

func (d *dirNode) Readdir(context.Context) (fs.DirStream, syscall.Errno) {
	out := make([]fuse.DirEntry, 0, len(d.dir.entries))
	for _, e := range d.dir.entries {
		mode := uint32(fuse.S_IFDIR)
		if e.link != "" {
			mode = fuse.S_IFLNK
		}
		out = append(out, fuse.DirEntry{Name: e.name, Mode: mode})
	}
	return fs.NewListDirStream(out), 0
}

func (d *dirNode) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	e, ok := d.dir.lookup(name)
	if !ok {
		return nil, syscall.ENOENT
	}
	if ch := d.GetChild(name); ch != nil {
		return ch, fillEntry(ctx, ch, out)
	}
	var node fs.InodeEmbedder
	mode := uint32(fuse.S_IFDIR)
	switch {
	case e.dir != nil:
		node = &dirNode{fsys: d.fsys, dir: e.dir}
	case e.link != "":
		t := e.snapLinkTime(d.dir)
		node = &linkNode{meta: fsmeta.Meta{Type: fsmeta.TypeSymlink, Mode: 0o777, LinkTarget: []byte(e.link),
			Size: int64(len(e.link)), MTimeNs: t, ATimeNs: t, CTimeNs: t}}
		mode = fuse.S_IFLNK
	default:
		s := e.snap
		t := s.Time.UnixNano()
		node = &treeNode{fsys: d.fsys, id: s.Tree,
			meta: fsmeta.Meta{Type: fsmeta.TypeDir, Mode: 0o555, MTimeNs: t, ATimeNs: t, CTimeNs: t}}
	}
	ch := d.NewInode(ctx, node, fs.StableAttr{Mode: mode})
	return ch, fillEntry(ctx, ch, out)
}

// snapLinkTime is a "latest" link's time: that of its directory.
func (e ventry) snapLinkTime(d *vdir) int64 { return d.mtime.UnixNano() }

// fillEntry answers a lookup with the child's attributes.
func fillEntry(ctx context.Context, ch *fs.Inode, out *fuse.EntryOut) syscall.Errno {
	ga, ok := ch.Operations().(fs.NodeGetattrer)
	if !ok {
		return 0
	}
	var a fuse.AttrOut
	if e := ga.Getattr(ctx, nil, &a); e != 0 {
		return e
	}
	out.Attr = a.Attr
	return 0
}

// setAttr fills a from a node's metadata.
func setAttr(a *fuse.Attr, m *fsmeta.Meta) {
	a.Mode = fileType(m.Type) | (m.Mode & 0o7777)
	a.Uid, a.Gid = m.UID, m.GID
	a.Nlink = 1
	if m.Type == fsmeta.TypeFile || m.Type == fsmeta.TypeSymlink {
		a.Size = uint64(m.Size) // #nosec G115 -- sizes are never negative in a valid tree
		a.Blocks = (a.Size + 511) / 512
	}
	if m.Type == fsmeta.TypeCharDev || m.Type == fsmeta.TypeBlockDev {
		a.Rdev = uint32(m.Rdev) // #nosec G115 -- FUSE carries a 32-bit device number
	}
	setTimes(a, m.MTimeNs, m.ATimeNs, m.CTimeNs)
}

func setTimes(a *fuse.Attr, mtime, atime, ctime int64) {
	a.SetTimes(ptime(atime), ptime(mtime), ptime(ctime))
}

func ptime(ns int64) *time.Time {
	t := time.Unix(0, ns)
	return &t
}

func fileType(t fsmeta.Type) uint32 {
	switch t {
	case fsmeta.TypeDir:
		return fuse.S_IFDIR
	case fsmeta.TypeSymlink:
		return fuse.S_IFLNK
	case fsmeta.TypeFIFO:
		return syscall.S_IFIFO
	case fsmeta.TypeCharDev:
		return syscall.S_IFCHR
	case fsmeta.TypeBlockDev:
		return syscall.S_IFBLK
	case fsmeta.TypeSocket:
		return syscall.S_IFSOCK
	}
	return fuse.S_IFREG
}

// treeNode is a directory of a snapshot; its tree is loaded on first use.
type treeNode struct {
	fs.Inode
	fsys *fileSystem
	id   repository.ID
	meta fsmeta.Meta

	mu   sync.Mutex
	tree *repository.Tree
}

var (
	_ fs.NodeReaddirer = (*treeNode)(nil)
	_ fs.NodeLookuper  = (*treeNode)(nil)
	_ fs.NodeGetattrer = (*treeNode)(nil)
)

func (t *treeNode) load(ctx context.Context) (*repository.Tree, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.tree != nil {
		return t.tree, nil
	}
	tr, err := t.fsys.repo.LoadTree(ctx, t.id)
	if err != nil {
		return nil, err
	}
	t.tree = tr
	return tr, nil
}

func (t *treeNode) Getattr(_ context.Context, _ fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	setAttr(&out.Attr, &t.meta)
	return 0
}

func (t *treeNode) Readdir(ctx context.Context) (fs.DirStream, syscall.Errno) {
	tr, err := t.load(ctx)
	if err != nil {
		return nil, errno(err)
	}
	out := make([]fuse.DirEntry, 0, len(tr.Nodes))
	for _, n := range tr.Nodes {
		out = append(out, fuse.DirEntry{Name: string(n.Name), Mode: fileType(n.Type)})
	}
	return fs.NewListDirStream(out), 0
}

func (t *treeNode) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	tr, err := t.load(ctx)
	if err != nil {
		return nil, errno(err)
	}
	n := childNode(tr, name)
	if n == nil {
		return nil, syscall.ENOENT
	}
	if ch := t.GetChild(name); ch != nil {
		return ch, fillEntry(ctx, ch, out)
	}
	var node fs.InodeEmbedder
	switch {
	case n.Type == fsmeta.TypeDir && n.Subtree != nil:
		node = &treeNode{fsys: t.fsys, id: *n.Subtree, meta: n.Meta}
	case n.Type == fsmeta.TypeFile:
		node = &fileNode{fsys: t.fsys, node: n}
	default:
		node = &linkNode{meta: n.Meta} // symlinks, and the types that only have attributes
	}
	ch := t.NewInode(ctx, node, fs.StableAttr{Mode: fileType(n.Type)})
	return ch, fillEntry(ctx, ch, out)
}

func childNode(t *repository.Tree, name string) *repository.Node {
	for _, n := range t.Nodes {
		if string(n.Name) == name {
			return n
		}
	}
	return nil
}

// linkNode is a symlink, or a fifo, device or socket (attributes only).
type linkNode struct {
	fs.Inode
	meta fsmeta.Meta
}

var (
	_ fs.NodeReadlinker = (*linkNode)(nil)
	_ fs.NodeGetattrer  = (*linkNode)(nil)
)

func (l *linkNode) Getattr(_ context.Context, _ fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	setAttr(&out.Attr, &l.meta)
	return 0
}

func (l *linkNode) Readlink(context.Context) ([]byte, syscall.Errno) {
	if l.meta.Type != fsmeta.TypeSymlink {
		return nil, syscall.EINVAL
	}
	return l.meta.LinkTarget, 0
}

// fileNode is a regular file of a snapshot.
type fileNode struct {
	fs.Inode
	fsys *fileSystem
	node *repository.Node
}

var (
	_ fs.NodeOpener    = (*fileNode)(nil)
	_ fs.NodeReader    = (*fileNode)(nil)
	_ fs.NodeGetattrer = (*fileNode)(nil)
)

func (f *fileNode) Getattr(_ context.Context, _ fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	setAttr(&out.Attr, &f.node.Meta)
	return 0
}

// fileHandle is an open file: its content map and one cached blob.
type fileHandle struct {
	c     *content
	cache blobCache
}

func (f *fileNode) Open(_ context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	if flags&(syscall.O_WRONLY|syscall.O_RDWR|syscall.O_TRUNC|syscall.O_APPEND) != 0 {
		return nil, 0, syscall.EROFS
	}
	c, err := newContent(f.node)
	if err != nil {
		return nil, 0, syscall.EIO
	}
	return &fileHandle{c: c}, fuse.FOPEN_KEEP_CACHE, 0
}

func (f *fileNode) Read(ctx context.Context, fh fs.FileHandle, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	h, ok := fh.(*fileHandle)
	if !ok {
		return nil, syscall.EBADF
	}
	n, err := h.c.readAt(ctx, f.fsys.repo, &h.cache, dest, off)
	if err != nil {
		return nil, errno(err)
	}
	return fuse.ReadResultData(dest[:n]), 0
}
