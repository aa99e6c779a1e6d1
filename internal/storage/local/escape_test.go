package local

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coffer-backup/coffer/internal/regfile"
	"github.com/coffer-backup/coffer/internal/storage"
)

// plantDirLink replaces the layout directory rel of l with a symbolic link
// to a new directory outside the repository, and returns that directory.
func plantDirLink(t *testing.T, l *Local, rel string) string {
	t.Helper()
	outside := t.TempDir()
	p := filepath.Join(l.dir, rel)
	if err := os.RemoveAll(p); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, p); err != nil {
		t.Fatal(err)
	}
	return outside
}

func assertEmptyDir(t *testing.T, dir string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 0 {
		t.Errorf("%d entries written outside the repository in %s, first %s", len(ents), dir, ents[0].Name())
	}
}

// TestSymlinkedLayoutDirRefused replaces each kind directory and a data
// shard by a link to a directory outside: every call on an object under it
// fails with an error naming the link, and nothing is written through it.
func TestSymlinkedLayoutDirRefused(t *testing.T) {
	t.Parallel()
	pack := packName(0xab)
	cases := []struct {
		rel string
		h   storage.Handle
	}{
		{"index", storage.Handle{Kind: storage.KindIndex, Name: "i1"}},
		{"locks", storage.Handle{Kind: storage.KindLocks, Name: "l1"}},
		{"snapshots", storage.Handle{Kind: storage.KindSnapshots, Name: "s1"}},
		{"keys", storage.Handle{Kind: storage.KindKeys, Name: "k1"}},
		{"data", storage.Handle{Kind: storage.KindData, Name: pack}},
		{filepath.Join("data", "ab"), storage.Handle{Kind: storage.KindData, Name: pack}},
	}
	for _, c := range cases {
		t.Run(c.rel, func(t *testing.T) {
			t.Parallel()
			l := newRepo(t)
			save(t, l, storage.KindConfig, "config", []byte("cfg"))
			outside := plantDirLink(t, l, c.rel)
			wantErr := func(op string, err error) {
				t.Helper()
				if !errors.Is(err, ErrSymlink) {
					t.Errorf("%s through a linked %s: %v, want ErrSymlink", op, c.rel, err)
					return
				}
				if !bytes.Contains([]byte(err.Error()), []byte(filepath.Join(l.dir, c.rel))) {
					t.Errorf("%s: error does not name the link %s: %v", op, filepath.Join(l.dir, c.rel), err)
				}
			}
			wantErr("Save", l.Save(ctx, c.h, []byte("x")))
			assertEmptyDir(t, outside)
			// An object planted in the link's target is not read either.
			_, p := dirOf(c.h)
			planted := filepath.Join(outside, filepath.Base(p))
			if c.rel == "data" {
				planted = filepath.Join(outside, "ab", filepath.Base(p))
				if err := os.Mkdir(filepath.Dir(planted), 0o700); err != nil {
					t.Fatal(err)
				}
			}
			if err := os.WriteFile(planted, []byte("planted"), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := l.Load(ctx, c.h, 0, -1)
			wantErr("Load", err)
			_, err = l.Stat(ctx, c.h)
			wantErr("Stat", err)
			wantErr("Remove", l.Remove(ctx, c.h))
			if _, err := os.Stat(planted); err != nil {
				t.Errorf("Remove reached through the link: %v", err)
			}
			wantErr("List", l.List(ctx, c.h.Kind, func(storage.FileInfo) error { return nil }))
		})
	}
}

// TestSymlinkInsideRepositoryRefused: a link that stays inside the
// repository (index -> snapshots) is refused too, not followed.
func TestSymlinkInsideRepositoryRefused(t *testing.T) {
	t.Parallel()
	l := newRepo(t)
	if err := os.Remove(filepath.Join(l.dir, "index")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("snapshots", filepath.Join(l.dir, "index")); err != nil {
		t.Fatal(err)
	}
	err := l.Save(ctx, storage.Handle{Kind: storage.KindIndex, Name: "i1"}, []byte("x"))
	if !errors.Is(err, ErrSymlink) {
		t.Fatalf("Save through index -> snapshots: %v, want ErrSymlink", err)
	}
	assertEmptyDir(t, filepath.Join(l.dir, "snapshots"))
}

// TestSymlinkSwapRace swaps the index directory for a link to a directory
// outside while Saves run: whatever moment the swap hits, nothing is ever
// written outside the repository (os.Root resolves every path inside).
func TestSymlinkSwapRace(t *testing.T) {
	t.Parallel()
	l := newRepo(t)
	outside := t.TempDir()
	idx := filepath.Join(l.dir, "index")
	real := filepath.Join(l.dir, "index.real")
	if err := os.Rename(idx, real); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(l.dir, "index.link")
	if err := os.Symlink(outside, link); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("index.real", idx); err != nil {
		t.Fatal(err)
	}
	// idx alternates between a link inside (refused by the check, or
	// followed inside by os.Root after a swap) and one outside.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			src := link
			if i%2 == 1 {
				src = filepath.Join(l.dir, "index.inside")
				_ = os.Symlink("index.real", src)
			}
			_ = os.Rename(src, idx)
		}
	}()
	deadline := time.Now().Add(300 * time.Millisecond)
	for i := 0; time.Now().Before(deadline); i++ {
		_ = l.Save(ctx, storage.Handle{Kind: storage.KindIndex, Name: packName(i)}, []byte("x"))
	}
	close(stop)
	wg.Wait()
	assertEmptyDir(t, outside)
}

// TestSpecialFilesNotOpened plants a FIFO (and, as root, a device) under
// object names: Load fails at once with regfile.ErrNotRegular instead of
// blocking in open(2), Stat and Remove refuse, List skips them.
func TestSpecialFilesNotOpened(t *testing.T) {
	t.Parallel()
	l := newRepo(t)
	save(t, l, storage.KindSnapshots, "s0", []byte("x"))
	pack := packName(0x12)
	handles := []storage.Handle{
		{Kind: storage.KindConfig, Name: "config"},
		{Kind: storage.KindData, Name: pack},
		{Kind: storage.KindIndex, Name: "i1"},
		{Kind: storage.KindSnapshots, Name: "s1"},
	}
	if err := os.MkdirAll(filepath.Join(l.dir, "data", "12"), 0o700); err != nil {
		t.Fatal(err)
	}
	for i, h := range handles {
		_, p := dirOf(h)
		var err error
		if i == 3 && os.Geteuid() == 0 {
			err = syscall.Mknod(filepath.Join(l.dir, p), syscall.S_IFCHR|0o600, 0x0103) // /dev/null's numbers: harmless
		} else {
			err = syscall.Mkfifo(filepath.Join(l.dir, p), 0o600)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, h := range handles {
		done := make(chan error, 1)
		go func() {
			_, err := l.Load(ctx, h, 0, -1)
			done <- err
		}()
		select {
		case err := <-done:
			if !errors.Is(err, regfile.ErrNotRegular) {
				t.Errorf("Load %s: %v, want ErrNotRegular", h, err)
			}
		case <-time.After(2 * time.Second):
			t.Fatalf("Load %s blocks on a special file", h)
		}
		if _, err := l.Stat(ctx, h); !errors.Is(err, regfile.ErrNotRegular) {
			t.Errorf("Stat %s: %v, want ErrNotRegular", h, err)
		}
		if err := l.Remove(ctx, h); !errors.Is(err, regfile.ErrNotRegular) {
			t.Errorf("Remove %s: %v, want ErrNotRegular", h, err)
		}
	}
	for _, k := range []storage.Kind{storage.KindData, storage.KindIndex, storage.KindSnapshots} {
		var names []string
		if err := l.List(ctx, k, func(fi storage.FileInfo) error { names = append(names, fi.Name); return nil }); err != nil {
			t.Fatal(err)
		}
		if k == storage.KindSnapshots && (len(names) != 1 || names[0] != "s0") || k != storage.KindSnapshots && len(names) != 0 {
			t.Errorf("List %s = %v, special files listed", k, names)
		}
	}
}

// TestLoadCancelledBetweenChunks: a long read stops at the next chunk once
// its context is done.
func TestLoadCancelledBetweenChunks(t *testing.T) {
	t.Parallel()
	l := newRepo(t)
	h := storage.Handle{Kind: storage.KindSnapshots, Name: "big"}
	save(t, l, h.Kind, h.Name, make([]byte, 2*readChunk+1))
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := l.Load(cctx, h, 0, -1); !errors.Is(err, context.Canceled) {
		t.Fatalf("Load with a done context: %v", err)
	}
	b, err := l.Load(ctx, h, 1, -1)
	if err != nil || len(b) != 2*readChunk {
		t.Fatalf("Load across chunks: %d bytes, %v", len(b), err)
	}
}
