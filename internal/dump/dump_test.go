package dump

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/coffer-backup/coffer/internal/fsmeta"
	"github.com/coffer-backup/coffer/internal/repository"
	"golang.org/x/sys/unix"
)

// fakeRepo holds trees and blobs in maps, keyed by IDs derived from a counter.
type fakeRepo struct {
	trees map[repository.ID]*repository.Tree
	blobs map[repository.ID][]byte
	next  byte
	loads int
}

func newFake() *fakeRepo {
	return &fakeRepo{trees: map[repository.ID]*repository.Tree{}, blobs: map[repository.ID][]byte{}}
}

func (f *fakeRepo) id() repository.ID {
	f.next++
	var id repository.ID
	id[0], id[1] = f.next, 0xaa
	return id
}

func (f *fakeRepo) LoadTree(_ context.Context, id repository.ID) (*repository.Tree, error) {
	t, ok := f.trees[id]
	if !ok {
		return nil, fmt.Errorf("tree %s: %w", id.Short(), repository.ErrBlobNotFound)
	}
	return t, nil
}

func (f *fakeRepo) LoadBlobInto(_ context.Context, _ repository.BlobType, id repository.ID, buf []byte) ([]byte, error) {
	b, ok := f.blobs[id]
	if !ok {
		return nil, fmt.Errorf("blob %s: %w", id.Short(), repository.ErrBlobNotFound)
	}
	f.loads++
	return append(buf[:0], b...), nil
}

// file builds a file node from chunks; a chunk "\x00<n>" is a hole of n bytes.
func (f *fakeRepo) file(name string, chunks ...string) *repository.Node {
	n := &repository.Node{Name: []byte(name), Meta: fsmeta.Meta{Type: fsmeta.TypeFile, Mode: 0o640, UID: 1000, GID: 100,
		User: "alice", Group: "users", MTimeNs: time.Date(2024, 5, 6, 7, 8, 9, 123456789, time.UTC).UnixNano()}}
	for _, c := range chunks {
		var hole uint64
		if _, err := fmt.Sscanf(c, "\x00%d", &hole); err == nil {
			n.Content = append(n.Content, repository.ContentItem{Hole: hole})
			n.Size += int64(hole)
			continue
		}
		id := f.id()
		f.blobs[id] = []byte(c)
		n.Content = append(n.Content, repository.ContentItem{ID: &id, Size: uint64(len(c))})
		n.Size += int64(len(c))
	}
	return n
}

func (f *fakeRepo) dir(name string, children ...*repository.Node) *repository.Node {
	id := f.id()
	f.trees[id] = &repository.Tree{Nodes: children}
	f.trees[id].Sort()
	return &repository.Node{Name: []byte(name), Meta: fsmeta.Meta{Type: fsmeta.TypeDir, Mode: 0o2755,
		MTimeNs: time.Date(2023, 1, 2, 3, 4, 5, 0, time.UTC).UnixNano()}, Subtree: &id}
}

// sample is /etc/{hosts,link -> hosts,sparse,fifo,null,empty/} and /db.sql.
func sample(t *testing.T) (*fakeRepo, repository.ID) {
	t.Helper()
	f := newFake()
	link := &repository.Node{Name: []byte("link"), Meta: fsmeta.Meta{Type: fsmeta.TypeSymlink, Mode: 0o777, LinkTarget: []byte("hosts"), Size: 5}}
	fifo := &repository.Node{Name: []byte("fifo"), Meta: fsmeta.Meta{Type: fsmeta.TypeFIFO, Mode: 0o600}}
	null := &repository.Node{Name: []byte("null"), Meta: fsmeta.Meta{Type: fsmeta.TypeCharDev, Mode: 0o666, Rdev: unix.Mkdev(1, 3)}}
	sock := &repository.Node{Name: []byte("sock"), Meta: fsmeta.Meta{Type: fsmeta.TypeSocket, Mode: 0o755}}
	hosts := f.file("hosts", "127.0.0.1 ", "localhost\n")
	hosts.Xattrs = []fsmeta.Xattr{{Name: "user.note", Value: []byte("v\x00bin")}}
	etc := f.dir("etc", hosts, link, f.file("sparse", "ab", "\x0070000", "cd"), fifo, null, sock, f.dir("empty"))
	root := f.dir("", etc, f.file("db.sql", "CREATE TABLE t;\n"))
	return f, *root.Subtree
}

func TestLookupAndContent(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f, root := sample(t)
	for _, tc := range []struct{ path, want string }{
		{"/db.sql", "CREATE TABLE t;\n"},
		{"etc/hosts", "127.0.0.1 localhost\n"},
		{"/etc//sparse", "ab" + strings.Repeat("\x00", 70000) + "cd"},
	} {
		n, err := Lookup(ctx, f, root, tc.path)
		if err != nil {
			t.Fatalf("%s: %v", tc.path, err)
		}
		var b bytes.Buffer
		if err := Content(ctx, f, n, &b); err != nil {
			t.Fatalf("%s: %v", tc.path, err)
		}
		if b.String() != tc.want {
			t.Errorf("%s: got %d bytes %q..., want %d", tc.path, b.Len(), b.String()[:min(b.Len(), 20)], len(tc.want))
		}
	}
	for _, p := range []string{"/nope", "/etc/hosts/x", "/etc/nope"} {
		if _, err := Lookup(ctx, f, root, p); !errors.Is(err, ErrNotFound) {
			t.Errorf("%s: got %v, want ErrNotFound", p, err)
		}
	}
	n, err := Lookup(ctx, f, root, "/")
	if err != nil || n.Type != fsmeta.TypeDir || *n.Subtree != root {
		t.Fatalf("root: %v %+v", err, n)
	}
}

func TestContentRefusesWrongSize(t *testing.T) {
	t.Parallel()
	f := newFake()
	n := f.file("x", "abc")
	n.Size = 4
	var b bytes.Buffer
	if err := Content(context.Background(), f, n, &b); !errors.Is(err, ErrSizeMismatch) || b.Len() != 0 {
		t.Fatalf("got %v with %d bytes written", err, b.Len())
	}
	// A blob whose length differs from what the tree says is refused too.
	m := f.file("y", "abc")
	f.blobs[*m.Content[0].ID] = []byte("abcd")
	if err := Content(context.Background(), f, m, &b); !errors.Is(err, ErrSizeMismatch) {
		t.Fatalf("got %v", err)
	}
}

func TestTarArchive(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f, root := sample(t)
	n, err := Lookup(ctx, f, root, "/etc")
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := Archive(ctx, f, n, "/etc", Tar, &b); err != nil {
		t.Fatal(err)
	}
	names, got, data := readTar(t, &b)
	want := []string{"etc/", "etc/empty/", "etc/fifo", "etc/hosts", "etc/link", "etc/null", "etc/sparse"}
	if strings.Join(names, " ") != strings.Join(want, " ") {
		t.Fatalf("entries %v, want %v", names, want)
	}
	checkHostsHeader(t, got["etc/hosts"], data["etc/hosts"])
	if got["etc/"].Mode != 0o2755 || got["etc/"].Typeflag != tar.TypeDir {
		t.Errorf("etc/: %+v", got["etc/"])
	}
	if l := got["etc/link"]; l.Typeflag != tar.TypeSymlink || l.Linkname != "hosts" {
		t.Errorf("link: %+v", l)
	}
	if d := got["etc/null"]; d.Typeflag != tar.TypeChar || d.Devmajor != 1 || d.Devminor != 3 {
		t.Errorf("null: %+v", d)
	}
	if got["etc/fifo"].Typeflag != tar.TypeFifo || len(data["etc/sparse"]) != 70004 {
		t.Errorf("fifo %+v, sparse %d bytes", got["etc/fifo"], len(data["etc/sparse"]))
	}
}

func checkHostsHeader(t *testing.T, h *tar.Header, data string) {
	t.Helper()
	if data != "127.0.0.1 localhost\n" || h.Mode != 0o640 || h.Uid != 1000 || h.Gid != 100 ||
		h.Uname != "alice" || h.Gname != "users" || h.ModTime.UnixNano() != time.Date(2024, 5, 6, 7, 8, 9, 123456789, time.UTC).UnixNano() {
		t.Errorf("hosts: %+v %q", h, data)
	}
	if h.PAXRecords["SCHILY.xattr.user.note"] != "v\x00bin" {
		t.Errorf("xattr: %q", h.PAXRecords)
	}
}

// readTar returns a tar's entry names in order, headers and contents by name.
func readTar(t *testing.T, r io.Reader) ([]string, map[string]*tar.Header, map[string]string) {
	t.Helper()
	tr := tar.NewReader(r)
	got := map[string]*tar.Header{}
	var names []string
	data := map[string]string{}
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return names, got, data
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, h.Name)
		got[h.Name] = h
		c, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		data[h.Name] = string(c)
	}
}

func TestArchiveOfRootHasNoRootEntry(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f, root := sample(t)
	n, _ := Lookup(ctx, f, root, "/")
	var b bytes.Buffer
	if err := Archive(ctx, f, n, "/", Tar, &b); err != nil {
		t.Fatal(err)
	}
	h, err := tar.NewReader(&b).Next()
	if err != nil || h.Name != "db.sql" {
		t.Fatalf("first entry %+v, %v", h, err)
	}
}

func TestZipArchive(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f, root := sample(t)
	n, _ := Lookup(ctx, f, root, "/etc")
	var b bytes.Buffer
	if err := Archive(ctx, f, n, "/etc", Zip, &b); err != nil {
		t.Fatal(err)
	}
	zr, err := zip.NewReader(bytes.NewReader(b.Bytes()), int64(b.Len()))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, zf := range zr.File {
		rc, err := zf.Open()
		if err != nil {
			t.Fatal(err)
		}
		c, _ := io.ReadAll(rc)
		rc.Close()
		got[zf.Name] = zf.Mode().String() + " " + string(c)
	}
	if got["etc/hosts"] != "-rw-r----- 127.0.0.1 localhost\n" || got["etc/link"] != "Lrwxrwxrwx hosts" || len(got) != 5 {
		t.Fatalf("zip entries %q", got)
	}
}

func TestArchiveStopsOnMissingBlob(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f, root := sample(t)
	clear(f.blobs)
	n, _ := Lookup(ctx, f, root, "/")
	if err := Archive(ctx, f, n, "/", Tar, io.Discard); !errors.Is(err, repository.ErrBlobNotFound) {
		t.Fatalf("got %v", err)
	}
	if _, err := ParseFormat("rar"); !errors.Is(err, ErrUnknownFormat) {
		t.Fatalf("ParseFormat: %v", err)
	}
	if err := Archive(ctx, f, n, "/", Format("rar"), io.Discard); !errors.Is(err, ErrUnknownFormat) {
		t.Fatalf("Archive: %v", err)
	}
}

func FuzzLookup(f *testing.F) {
	for _, s := range []string{"/", "/etc/hosts", "etc/../db.sql", "//", "/etc/link/x", "\x00", "/etc/empty/."} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		r, root := sample(t)
		n, err := Lookup(context.Background(), r, root, p)
		if err != nil {
			if !errors.Is(err, ErrNotFound) {
				t.Fatalf("%q: unexpected error %v", p, err)
			}
			return
		}
		if n == nil {
			t.Fatalf("%q: nil node without error", p)
		}
	})
}
