package formattest

import (
	"bytes"
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/coffer-backup/coffer/internal/fsmeta"
	"github.com/coffer-backup/coffer/internal/repository"
	"github.com/coffer-backup/coffer/internal/storage"
	"golang.org/x/sys/unix"
)

func packHandle(id repository.ID) storage.Handle {
	return storage.Handle{Kind: storage.KindData, Name: id.String()}
}

// resolved returns the entry a path's inode was created by: a hardlink's
// target entry, or the entry itself.
func resolved(in []inputEntry, x inputEntry) inputEntry {
	if x.kind != kindHardlink {
		return x
	}
	for _, y := range in {
		if y.path == x.target {
			return y
		}
	}
	panic("hardlink to an unknown entry " + x.target)
}

func fsType(k entryKind) uint32 {
	switch k {
	case kindDir:
		return unix.S_IFDIR
	case kindSymlink:
		return unix.S_IFLNK
	case kindFIFO:
		return unix.S_IFIFO
	}
	return unix.S_IFREG
}

func metaType(k entryKind) fsmeta.Type {
	switch k {
	case kindDir:
		return fsmeta.TypeDir
	case kindSymlink:
		return fsmeta.TypeSymlink
	case kindFIFO:
		return fsmeta.TypeFIFO
	}
	return fsmeta.TypeFile
}

// compareRestored checks the tree restored at root against inputs(): the
// same names and nothing else, every byte, type, mode, mtime, symlink
// target and hard link, and the owner when the test runs as root.
func compareRestored(t *testing.T, root string) {
	t.Helper()
	in := inputs()
	var want, got []string
	for _, x := range in {
		want = append(want, x.path)
	}
	err := filepath.WalkDir(root, func(p string, _ fs.DirEntry, err error) error {
		if err != nil || p == root {
			return err
		}
		rel, err := filepath.Rel(root, p)
		got = append(got, filepath.ToSlash(rel))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(want)
	slices.Sort(got)
	if !slices.Equal(want, got) {
		t.Fatalf("restored names differ from the inputs:\n got %q\nwant %q", got, want)
	}
	var st unix.Stat_t
	if err := unix.Lstat(root, &st); err != nil {
		t.Fatal(err)
	}
	if st.Mode&0o7777 != rootMode || st.Mtim.Nano() != rootMTime.UnixNano() {
		t.Errorf("root: mode %#o mtime %d, want %#o %d", st.Mode&0o7777, st.Mtim.Nano(), rootMode, rootMTime.UnixNano())
	}
	for _, x := range in {
		p := filepath.Join(root, filepath.FromSlash(x.path))
		compareEntry(t, root, p, x, resolved(in, x))
	}
}

func compareEntry(t *testing.T, root, p string, x, inode inputEntry) {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		t.Errorf("%q: %v", x.path, err)
		return
	}
	// Check the times before reading the file, which may update atime.
	if st.Mode&unix.S_IFMT != fsType(inode.kind) {
		t.Errorf("%q: file type %#o, want %#o", x.path, st.Mode&unix.S_IFMT, fsType(inode.kind))
	}
	if inode.kind != kindSymlink && st.Mode&0o7777 != inode.mode {
		t.Errorf("%q: mode %#o, want %#o", x.path, st.Mode&0o7777, inode.mode)
	}
	if st.Mtim.Nano() != inode.mtime.UnixNano() {
		t.Errorf("%q: mtime %d, want %d (%s)", x.path, st.Mtim.Nano(), inode.mtime.UnixNano(), inode.mtime)
	}
	if os.Geteuid() == 0 && inode.uid >= 0 && (int(st.Uid) != inode.uid || int(st.Gid) != inode.gid) {
		t.Errorf("%q: owner %d:%d, want %d:%d", x.path, st.Uid, st.Gid, inode.uid, inode.gid)
	}
	switch x.kind {
	case kindSymlink:
		if target, err := os.Readlink(p); err != nil || target != x.target {
			t.Errorf("%q: link target %q (%v), want %q", x.path, target, err, x.target)
		}
	case kindHardlink:
		a, err1 := os.Lstat(p)
		b, err2 := os.Lstat(filepath.Join(root, filepath.FromSlash(x.target)))
		if err1 != nil || err2 != nil || !os.SameFile(a, b) {
			t.Errorf("%q is not a hard link of %q (%v, %v)", x.path, x.target, err1, err2)
		}
	}
	if inode.kind == kindFile {
		b, err := os.ReadFile(p) // #nosec G304 -- a path below the test's restore target
		if err != nil {
			t.Errorf("%q: %v", x.path, err)
		} else if want := inode.content(); !bytes.Equal(b, want) {
			t.Errorf("%q: restored %d bytes that differ from the %d-byte input", x.path, len(b), len(want))
		}
	}
}

// TestFrozenRepositoryRecordsMetadata compares the metadata the frozen
// snapshot recorded with the inputs, independently of a restore.
func TestFrozenRepositoryRecordsMetadata(t *testing.T) {
	t.Parallel()
	r := openFixture(t, []byte(fixturePassphrase))
	files, _ := fixtureSnapshots(t, r)
	root := files.Paths[0]
	byPath := map[string]inputEntry{}
	in := inputs()
	for _, x := range in {
		byPath[root+"/"+x.path] = x
	}
	seen := 0
	err := r.Walk(context.Background(), files.Tree, func(p string, n *repository.Node) error {
		if p == root {
			if n.Type != fsmeta.TypeDir || n.Mode != rootMode || n.MTimeNs != rootMTime.UnixNano() {
				t.Errorf("root node %s %#o %d", n.Type, n.Mode, n.MTimeNs)
			}
			return nil
		}
		if !strings.HasPrefix(p, root+"/") {
			return nil
		}
		x, ok := byPath[p]
		if !ok {
			t.Errorf("snapshot holds %q, which is no input", p)
			return nil
		}
		seen++
		inode := resolved(in, x)
		if n.Type != metaType(inode.kind) || (inode.kind != kindSymlink && n.Mode != inode.mode) || n.MTimeNs != inode.mtime.UnixNano() {
			t.Errorf("%q recorded as %s %#o mtime %d, want %s %#o %d", x.path, n.Type, n.Mode, n.MTimeNs, metaType(inode.kind), inode.mode, inode.mtime.UnixNano())
		}
		if inode.kind == kindSymlink && string(n.LinkTarget) != inode.target {
			t.Errorf("%q recorded link target %q, want %q", x.path, n.LinkTarget, inode.target)
		}
		if inode.kind == kindFile && n.Size != int64(len(inode.content())) {
			t.Errorf("%q recorded size %d, want %d", x.path, n.Size, len(inode.content()))
		}
		if inode.uid >= 0 && (int(n.UID) != inode.uid || int(n.GID) != inode.gid) {
			t.Errorf("%q recorded owner %d:%d, want %d:%d", x.path, n.UID, n.GID, inode.uid, inode.gid)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if seen != len(in) {
		t.Fatalf("snapshot holds %d of the %d inputs", seen, len(in))
	}
}

// dataReferences counts the data blob references of every file in the
// repository's snapshots, and the distinct blobs they name.
func dataReferences(t *testing.T, r *repository.Repository) (refs, distinct int) {
	t.Helper()
	snaps, _, err := r.LoadSnapshots(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	seen := map[repository.ID]bool{}
	for _, s := range snaps {
		err := r.Walk(context.Background(), s.Tree, func(_ string, n *repository.Node) error {
			for _, c := range n.Content {
				if c.ID != nil {
					refs++
					seen[*c.ID] = true
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return refs, len(seen)
}
