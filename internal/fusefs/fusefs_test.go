package fusefs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coffer-backup/coffer/internal/fsmeta"
	"github.com/coffer-backup/coffer/internal/repository"
	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

func snap(b byte, host string, t time.Time, tags ...string) *repository.Snapshot {
	var id, tree repository.ID
	id[0], tree[0] = b, b
	return &repository.Snapshot{ID: id, Tree: tree, Hostname: host, Time: t, Tags: tags}
}

func names(d *vdir) string {
	var out []string
	for _, e := range d.entries {
		s := e.name
		if e.link != "" {
			s += "->" + e.link
		}
		out = append(out, s)
	}
	return strings.Join(out, " ")
}

func TestLayout(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2024, 3, 4, 5, 6, 7, 0, time.UTC)
	snaps := []*repository.Snapshot{
		snap(0x30, "web", t0.Add(time.Hour), "nightly"),
		snap(0x10, "db", t0, "nightly", "pre/upgrade"),
		snap(0x20, "db", t0, "x"), // same second: a suffix
	}
	root := layout(snaps, time.UTC)
	if got := names(root); got != "hosts ids snapshots tags" {
		t.Fatalf("root: %s", got)
	}
	s, _ := root.lookup("snapshots")
	if got := names(s.dir); got != "2024-03-04T05:06:07Z 2024-03-04T05:06:07Z-1 2024-03-04T06:06:07Z latest->2024-03-04T06:06:07Z" {
		t.Fatalf("snapshots: %s", got)
	}
	if e, _ := s.dir.lookup("2024-03-04T05:06:07Z-1"); e.snap != snaps[2] {
		t.Fatalf("the later of two in one second gets the suffix: %+v", e.snap)
	}
	h, _ := root.lookup("hosts")
	db, ok := h.dir.lookup("db")
	if !ok || names(h.dir) != "db web" || names(db.dir) != "2024-03-04T05:06:07Z 2024-03-04T05:06:07Z-1 latest->2024-03-04T05:06:07Z-1" {
		t.Fatalf("hosts: %s / %s", names(h.dir), names(db.dir))
	}
	tg, _ := root.lookup("tags")
	if names(tg.dir) != "nightly x" { // "pre/upgrade" is no file name
		t.Fatalf("tags: %s", names(tg.dir))
	}
	ids, _ := root.lookup("ids")
	if names(ids.dir) != snaps[1].ID.Short()+" "+snaps[2].ID.Short()+" "+snaps[0].ID.Short() {
		t.Fatalf("ids: %s", names(ids.dir))
	}
	if !root.mtime.Equal(t0.Add(time.Hour)) || !db.dir.mtime.Equal(t0) {
		t.Fatalf("mtimes %v %v", root.mtime, db.dir.mtime)
	}
	if _, ok := root.lookup("nope"); ok {
		t.Fatal("lookup of a missing name")
	}
	if empty := layout(nil, time.UTC); names(empty) != "hosts ids snapshots tags" {
		t.Fatalf("empty repository: %s", names(empty))
	}
}

// blobs is a Repo of data blobs only.
type blobs struct {
	m     map[repository.ID][]byte
	loads int
}

func (b *blobs) LoadTree(context.Context, repository.ID) (*repository.Tree, error) {
	return nil, repository.ErrBlobNotFound
}

func (b *blobs) LoadBlobInto(_ context.Context, _ repository.BlobType, id repository.ID, buf []byte) ([]byte, error) {
	d, ok := b.m[id]
	if !ok {
		return nil, fmt.Errorf("blob %s: %w", id.Short(), repository.ErrBlobNotFound)
	}
	b.loads++
	return append(buf[:0], d...), nil
}

// sparseFile builds a node of random blobs and holes, and its bytes.
func sparseFile(r *rand.Rand) (*blobs, *repository.Node, []byte) {
	b := &blobs{m: map[repository.ID][]byte{}}
	n := &repository.Node{Name: []byte("f"), Meta: fsmeta.Meta{Type: fsmeta.TypeFile, Mode: 0o644}}
	var want []byte
	for i := range 12 {
		it := repository.ContentItem{}
		if i%3 != 1 {
			d := make([]byte, 1+r.IntN(5000))
			for j := range d {
				d[j] = byte(r.Uint32())
			}
			var id repository.ID
			id[0], id[1] = byte(i), 0xee
			b.m[id] = d
			it.ID, it.Size = &id, uint64(len(d))
			want = append(want, d...)
		}
		if i%2 == 0 {
			it.Hole = uint64(r.IntN(3000))
			want = append(want, make([]byte, it.Hole)...)
		}
		n.Content = append(n.Content, it)
	}
	n.Size = int64(len(want))
	return b, n, want
}

func TestContentReadAt(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(1, 2))
	repo, n, want := sparseFile(r)
	c, err := newContent(n)
	if err != nil {
		t.Fatal(err)
	}
	var cache blobCache
	for range 2000 {
		off := r.Int64N(int64(len(want)) + 100)
		p := make([]byte, r.IntN(9000))
		got, err := c.readAt(context.Background(), repo, &cache, p, off)
		if err != nil {
			t.Fatal(err)
		}
		start := min(off, int64(len(want)))
		end := max(start, min(off+int64(len(p)), int64(len(want))))
		if exp := want[start:end]; !bytes.Equal(p[:got], exp) {
			t.Fatalf("read %d at %d: got %d bytes, want %d", len(p), off, got, len(exp))
		}
	}
	// Sequential small reads load each blob once.
	repo.loads = 0
	cache = blobCache{}
	p := make([]byte, 100)
	for off := int64(0); off < int64(len(want)); off += 100 {
		if _, err := c.readAt(context.Background(), repo, &cache, p, off); err != nil {
			t.Fatal(err)
		}
	}
	if repo.loads != len(repo.m) {
		t.Fatalf("sequential reads loaded %d blobs, want %d", repo.loads, len(repo.m))
	}
}

func TestContentRefusesDamage(t *testing.T) {
	t.Parallel()
	repo, n, _ := sparseFile(rand.New(rand.NewPCG(3, 4)))
	n.Size++
	if _, err := newContent(n); !errors.Is(err, ErrBadContent) {
		t.Fatalf("wrong size: %v", err)
	}
	n.Size--
	c, _ := newContent(n)
	for id := range repo.m {
		repo.m[id] = []byte("short")
	}
	if _, err := c.readAt(context.Background(), repo, &blobCache{}, make([]byte, 10), 0); !errors.Is(err, ErrBadContent) {
		t.Fatalf("short blob: %v", err)
	}
	clear(repo.m)
	if _, err := c.readAt(context.Background(), repo, &blobCache{}, make([]byte, 10), 0); !errors.Is(err, repository.ErrBlobNotFound) {
		t.Fatalf("missing blob: %v", err)
	}
}

func TestNodesWithoutMount(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	repo, n, want := sparseFile(rand.New(rand.NewPCG(5, 6)))
	n.UID, n.GID, n.MTimeNs = 1000, 100, time.Date(2022, 1, 2, 3, 4, 5, 6, time.UTC).UnixNano()
	f := &fileNode{fsys: &fileSystem{repo: repo}, node: n}
	var a fuse.AttrOut
	if f.Getattr(ctx, nil, &a); a.Mode != fuse.S_IFREG|0o644 || a.Size != uint64(len(want)) || a.Uid != 1000 || a.Mtimensec != 6 {
		t.Fatalf("file attr %+v", a.Attr)
	}
	if _, _, e := f.Open(ctx, syscall.O_RDWR); e != syscall.EROFS {
		t.Fatalf("open for writing: %v", e)
	}
	fh, _, e := f.Open(ctx, syscall.O_RDONLY)
	if e != 0 {
		t.Fatal(e)
	}
	res, e := f.Read(ctx, fh, make([]byte, len(want)+10), 0)
	if e != 0 {
		t.Fatal(e)
	}
	got, _ := res.Bytes(nil)
	if !bytes.Equal(got, want) {
		t.Fatalf("read %d bytes, want %d", len(got), len(want))
	}
	l := &linkNode{meta: fsmeta.Meta{Type: fsmeta.TypeSymlink, LinkTarget: []byte("../x"), Size: 4, Mode: 0o777}}
	if tgt, e := l.Readlink(ctx); e != 0 || string(tgt) != "../x" {
		t.Fatalf("readlink %q %v", tgt, e)
	}
	fifo := &linkNode{meta: fsmeta.Meta{Type: fsmeta.TypeFIFO, Mode: 0o600}}
	if _, e := fifo.Readlink(ctx); e != syscall.EINVAL {
		t.Fatalf("readlink of a fifo: %v", e)
	}
	if fifo.Getattr(ctx, nil, &a); a.Mode != syscall.S_IFIFO|0o600 {
		t.Fatalf("fifo mode %o", a.Mode)
	}
	d := New(repo, []*repository.Snapshot{snap(1, "h", time.Unix(10, 0))}, Options{}).(*dirNode)
	ds, e := d.Readdir(ctx)
	if e != 0 {
		t.Fatal(e)
	}
	var entries []string
	for ds.HasNext() {
		de, _ := ds.Next()
		entries = append(entries, de.Name)
	}
	if strings.Join(entries, " ") != "hosts ids snapshots tags" {
		t.Fatalf("root entries %v", entries)
	}
	tn := &treeNode{fsys: &fileSystem{repo: repo}}
	if _, e := tn.Readdir(ctx); e != syscall.EIO {
		t.Fatalf("unreadable tree: %v", e)
	}
	var _ fs.InodeEmbedder = d
}
