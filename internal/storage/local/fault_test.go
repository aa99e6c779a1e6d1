//go:build linux

package local

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/coffer-backup/coffer/internal/storage"
	"github.com/coffer-backup/coffer/internal/storage/storagetest"
)

// mountTmpfs mounts a tmpfs of the given size on a fresh directory, or
// skips the test when mounting is not permitted.
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size="+size+",mode=0700"); err != nil {
		t.Skipf("cannot mount a tmpfs to simulate a full disk (%v); needs root or CAP_SYS_ADMIN", err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	return dir
}

// checkConsistent verifies that every listed object has the content and size
// that storagetest.Content gives its handle, that failed handles are absent
// and that no temporary file is left behind.
func checkConsistent(t *testing.T, l *Local, failed []storage.Handle) int {
	t.Helper()
	n := 0
	for _, k := range storage.Kinds {
		err := l.List(ctx, k, func(fi storage.FileInfo) error {
			h := storage.Handle{Kind: k, Name: fi.Name}
			b, err := l.Load(ctx, h, 0, -1)
			if err != nil {
				return err
			}
			if int64(len(b)) != fi.Size || !bytes.Equal(b, storagetest.Content(h.String(), len(b))) {
				t.Errorf("%v: listed object is not what was saved (%d bytes)", h, len(b))
			}
			n++
			return nil
		})
		if err != nil {
			t.Fatalf("List %s: %v", k, err)
		}
	}
	for _, h := range failed {
		if _, err := l.Stat(ctx, h); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("failed Save of %v left something: Stat = %v", h, err)
		}
	}
	if tmps := tempFiles(t, l.dir); len(tmps) != 0 {
		t.Errorf("temporary files left behind: %v", tmps)
	}
	return n
}

func TestDiskFull(t *testing.T) {
	mnt := mountTmpfs(t, "2m")
	l, err := Create(filepath.Join(mnt, "repo"))
	if err != nil {
		t.Fatal(err)
	}
	var failed []storage.Handle
	saved := 0
	for i := 0; i < 100 && len(failed) < 3; i++ {
		h := storage.Handle{Kind: storage.KindData, Name: fmt.Sprintf("%02x%04d", i*41%256, i)}
		err := l.Save(ctx, h, storagetest.Content(h.String(), 300<<10))
		if err == nil {
			saved++
			continue
		}
		if !errors.Is(err, syscall.ENOSPC) {
			t.Fatalf("Save on a full disk: %v, want ENOSPC", err)
		}
		if !strings.Contains(err.Error(), "save "+h.String()) || !strings.Contains(err.Error(), "no space left") {
			t.Errorf("error lacks context: %v", err)
		}
		failed = append(failed, h)
	}
	if saved == 0 || len(failed) == 0 {
		t.Fatalf("saved %d, failed %d: the disk never filled up or never took anything", saved, len(failed))
	}
	if n := checkConsistent(t, l, failed); n != saved {
		t.Errorf("listed %d objects, saved %d", n, saved)
	}
	// Space freed: the same name saves completely.
	var first storage.Handle
	if err := l.List(ctx, storage.KindData, func(fi storage.FileInfo) error {
		first = storage.Handle{Kind: storage.KindData, Name: fi.Name}
		return errors.New("one is enough")
	}); first.Name == "" {
		t.Fatalf("nothing listed: %v", err)
	}
	if err := l.Remove(ctx, first); err != nil {
		t.Fatal(err)
	}
	if err := l.Save(ctx, failed[0], storagetest.Content(failed[0].String(), 300<<10)); err != nil {
		t.Fatalf("Save after freeing space: %v", err)
	}
	checkConsistent(t, l, failed[1:])
}

// makeReadOnly makes dir unwritable: by mode for ordinary users, by a
// read-only bind mount for root (whom modes do not stop).
func makeReadOnly(t *testing.T, dir string) {
	t.Helper()
	if os.Geteuid() != 0 {
		if err := os.Chmod(dir, 0o500); err != nil { // #nosec G302 -- a directory, made read-only
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = os.Chmod(dir, 0o700) }) // #nosec G302 -- a directory, restored to owner-only
		return
	}
	if err := unix.Mount(dir, dir, "", unix.MS_BIND, ""); err != nil {
		t.Skipf("root cannot be stopped by modes and bind mounts are not permitted: %v", err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	if err := unix.Mount("", dir, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY, ""); err != nil {
		t.Skipf("cannot remount read-only: %v", err)
	}
}

func TestReadOnlyDirectory(t *testing.T) {
	l := newRepo(t)
	existing := []storage.Handle{
		{Kind: storage.KindData, Name: "ab01"},
		{Kind: storage.KindIndex, Name: "idx1"},
	}
	for _, h := range existing {
		save(t, l, h.Kind, h.Name, storagetest.Content(h.String(), 1000))
	}
	makeReadOnly(t, filepath.Join(l.dir, "data", "ab"))
	makeReadOnly(t, filepath.Join(l.dir, "index"))

	failed := []storage.Handle{
		{Kind: storage.KindData, Name: "ab02"},
		{Kind: storage.KindIndex, Name: "idx2"},
	}
	for _, h := range failed {
		err := l.Save(ctx, h, storagetest.Content(h.String(), 1000))
		if err == nil {
			t.Fatalf("Save %v into a read-only directory succeeded", h)
		}
		if !errors.Is(err, syscall.EROFS) && !errors.Is(err, syscall.EACCES) {
			t.Errorf("Save %v: %v, want EROFS or EACCES", h, err)
		}
		if !strings.Contains(err.Error(), "save "+h.String()) {
			t.Errorf("error lacks the object: %v", err)
		}
	}
	for _, h := range existing {
		if err := l.Remove(ctx, h); err == nil || errors.Is(err, storage.ErrNotFound) {
			t.Errorf("Remove %v from a read-only directory: %v", h, err)
		}
	}
	if n := checkConsistent(t, l, failed); n != len(existing) {
		t.Errorf("listed %d objects, want %d", n, len(existing))
	}
	// Other directories are still writable.
	h := storage.Handle{Kind: storage.KindData, Name: "cd01"}
	save(t, l, h.Kind, h.Name, storagetest.Content(h.String(), 10))
}
