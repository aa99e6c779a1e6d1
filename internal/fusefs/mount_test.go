package fusefs

import (
	"bytes"
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/coffer-backup/coffer/internal/archiver"
	"github.com/coffer-backup/coffer/internal/keyring"
	"github.com/coffer-backup/coffer/internal/repository"
	"github.com/coffer-backup/coffer/internal/storage/mem"
)

// mountOrSkip mounts a file system over snaps at a new directory, or skips
// the test where this process may not mount FUSE file systems.
func mountOrSkip(t *testing.T, r Repo, snaps []*repository.Snapshot) string {
	t.Helper()
	if _, err := os.Stat("/dev/fuse"); err != nil {
		t.Skipf("FUSE end-to-end test skipped: /dev/fuse is not available (%v)", err)
	}
	if os.Geteuid() != 0 {
		t.Skip("FUSE end-to-end test skipped: mounting without fusermount needs root")
	}
	dir := t.TempDir()
	srv, err := Mount(dir, r, snaps, Options{})
	if err != nil {
		t.Skipf("FUSE end-to-end test skipped: mounting is not permitted here: %v", err)
	}
	t.Cleanup(func() {
		if err := srv.Unmount(); err != nil {
			t.Errorf("unmount: %v", err)
		}
	})
	return dir
}

// backedUp backs up a small tree and returns the repository, the
// snapshot, the source directory, its files and a.txt's mtime.
func backedUp(t *testing.T) (*repository.Repository, *repository.Snapshot, string, map[string][]byte, time.Time) {
	t.Helper()
	ctx := context.Background()
	r, _, err := repository.Init(ctx, mem.New(), repository.InitOptions{
		Passphrase: []byte("pw"), KDF: keyring.KDFParams{Time: 1, MemoryKiB: 8 * 1024, Threads: 1}})
	if err != nil {
		t.Fatal(err)
	}
	src := t.TempDir()
	big := bytes.Repeat([]byte("0123456789abcdefghij"), 400000) // several blobs
	files := map[string][]byte{"a.txt": []byte("hello\n"), "sub/big": big, "sub/empty": nil}
	for p, d := range files {
		if err := os.MkdirAll(filepath.Join(src, filepath.Dir(p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(src, p), d, 0o640); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("../a.txt", filepath.Join(src, "sub", "link")); err != nil {
		t.Fatal(err)
	}
	mtime := time.Date(2020, 2, 3, 4, 5, 6, 700000000, time.UTC)
	if err := os.Chtimes(filepath.Join(src, "a.txt"), mtime, mtime); err != nil {
		t.Fatal(err)
	}
	s, err := archiver.New(r, archiver.Options{}).Snapshot(ctx, []string{src})
	if err != nil {
		t.Fatal(err)
	}
	s.Hostname, s.Tags = "host1", []string{"daily"}
	s.ID = repository.NewRandomID()
	return r, s, src, files, mtime
}

func TestMountReadsBackSnapshot(t *testing.T) {
	t.Parallel()
	r, s, src, files, mtime := backedUp(t)
	big := files["sub/big"]
	mnt := mountOrSkip(t, r, []*repository.Snapshot{s})

	for _, base := range []string{"snapshots/latest", "hosts/host1/latest", "tags/daily/latest", "ids/" + s.ID.Short(),
		"snapshots/" + s.Time.UTC().Format(TimeFormat)} {
		root := filepath.Join(mnt, base, src)
		for p, want := range files {
			got, err := os.ReadFile(filepath.Join(root, p)) // #nosec G304 -- the test's own mount
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("%s/%s: %d bytes, %v; want %d", base, p, len(got), err, len(want))
			}
		}
	}
	root := filepath.Join(mnt, "snapshots", "latest", src)
	checkAttrs(t, root, mtime)
	// Random reads in the middle of a file that spans several blobs.
	f, err := os.Open(filepath.Join(root, "sub", "big")) // #nosec G304 -- the test's own mount
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, off := range []int64{7_999_990, 1 << 20, 3, 4_000_001} {
		p := make([]byte, 70000)
		n, _ := f.ReadAt(p, off)
		if !bytes.Equal(p[:n], big[off:min(off+70000, int64(len(big)))]) {
			t.Fatalf("read at %d differs", off)
		}
	}
	if err := os.WriteFile(filepath.Join(root, "new"), []byte("x"), 0o600); err == nil {
		t.Fatal("write to a read-only mount succeeded")
	}
	var names []string
	if err := filepath.WalkDir(filepath.Join(mnt, "snapshots", "latest", src), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		names = append(names, d.Name())
		return nil
	}); err != nil || len(names) != 6 {
		t.Fatalf("walk: %v %v", names, err)
	}
}

func checkAttrs(t *testing.T, root string, mtime time.Time) {
	t.Helper()
	fi, err := os.Lstat(filepath.Join(root, "a.txt"))
	if err != nil || fi.Mode() != 0o640 || !fi.ModTime().Equal(mtime) || fi.Size() != 6 {
		t.Fatalf("a.txt: %v %v %v %v", err, fi.Mode(), fi.ModTime(), fi.Size())
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); !ok || int(st.Uid) != os.Getuid() {
		t.Fatalf("a.txt owner: %+v", fi.Sys())
	}
	if tgt, err := os.Readlink(filepath.Join(root, "sub", "link")); err != nil || tgt != "../a.txt" {
		t.Fatalf("symlink: %q %v", tgt, err)
	}
}
