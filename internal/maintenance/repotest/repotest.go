// Package repotest builds small real repositories for the tests of check,
// maintenance and snapdiff: cheap key derivation, small chunks and packs.
package repotest

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/coffer-backup/coffer/internal/archiver"
	"github.com/coffer-backup/coffer/internal/chunker"
	"github.com/coffer-backup/coffer/internal/keyring"
	"github.com/coffer-backup/coffer/internal/repository"
	"github.com/coffer-backup/coffer/internal/restorer"
	"github.com/coffer-backup/coffer/internal/storage"
)

// Password opens every test repository.
var Password = []byte("repotest password")

// KDF is deliberately cheap.
var KDF = keyring.KDFParams{Time: 1, MemoryKiB: 8 * 1024, Threads: 1}

// Chunker gives chunks of about 128 KiB so small trees still make many blobs.
var Chunker = chunker.Params{Min: 64 << 10, Avg: 128 << 10, Max: 512 << 10}

// Init creates a repository in st with 1 MiB packs. It opens with Password
// and with a recovery key that Secret returns.
func Init(t testing.TB, st storage.Storage) *repository.Repository {
	t.Helper()
	r, rk, err := repository.Init(context.Background(), st, repository.InitOptions{
		Passphrase: Password, KDF: KDF, Chunker: Chunker, PackSize: 1 << 20, Recovery: true,
	})
	if err != nil {
		t.Fatalf("init: %v", err)
	}
	for _, n := range Names(t, st, storage.KindKeys) {
		recoveryKeys.Store(n, rk.String())
	}
	return r
}

// recoveryKeys maps the key slot names of repositories Init made to their
// recovery key; copies of a repository keep the names.
var recoveryKeys sync.Map

// Secret returns what opens the repository in st fastest: the recovery
// key Init made for it, which needs no Argon2id (tests open repositories
// thousands of times, and Argon2id is slow under the race detector), or
// else Password.
func Secret(t testing.TB, st storage.Storage) []byte {
	t.Helper()
	for _, n := range Names(t, st, storage.KindKeys) {
		if k, ok := recoveryKeys.Load(n); ok {
			return []byte(k.(string))
		}
	}
	return Password
}

// Open opens a fresh handle on the repository in st (with its index loaded),
// as a new process would.
func Open(t testing.TB, st storage.Storage) *repository.Repository {
	t.Helper()
	r, err := repository.Open(context.Background(), st, Secret(t, st))
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	if err := r.LoadIndex(context.Background()); err != nil {
		t.Fatalf("load index: %v", err)
	}
	return r
}

// Backup backs up paths through a fresh repository handle and saves the
// snapshot with the given tags.
func Backup(t testing.TB, st storage.Storage, paths []string, tags ...string) *repository.Snapshot {
	t.Helper()
	r := Open(t, st)
	snap, err := archiver.New(r, archiver.Options{}).Snapshot(context.Background(), paths)
	if err != nil {
		t.Fatalf("backup: %v", err)
	}
	snap.Hostname = "testhost"
	snap.Tags = tags
	if err := r.SaveSnapshot(context.Background(), snap); err != nil {
		t.Fatalf("save snapshot: %v", err)
	}
	return snap
}

// WriteFile writes n random bytes (from rng) to path, creating directories.
func WriteFile(t testing.TB, path string, n int, rng *rand.Rand) []byte {
	t.Helper()
	var seed [32]byte
	binary.LittleEndian.PutUint64(seed[:], rng.Uint64())
	b := make([]byte, n)
	_, _ = rand.NewChaCha8(seed).Read(b)
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return b
}

// RandomTree fills dir with files of random content: nfiles files of up to
// maxSize bytes spread over a few subdirectories.
func RandomTree(t testing.TB, dir string, nfiles, maxSize int, rng *rand.Rand) {
	t.Helper()
	for i := 0; i < nfiles; i++ {
		sub := fmt.Sprintf("d%d", rng.IntN(3))
		WriteFile(t, filepath.Join(dir, sub, fmt.Sprintf("f%03d", i)), rng.IntN(maxSize+1), rng)
	}
}

// Files returns the regular files below dir with their content, keyed by
// path relative to dir.
func Files(t testing.TB, dir string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			b, err := os.ReadFile(p) // #nosec G304 G122 -- test helper reading its own temp dir
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(dir, p)
			out[rel] = b
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Restore restores snap into a new temporary directory through a fresh
// handle and returns the directory holding the snapshot's first path.
func Restore(t testing.TB, st storage.Storage, snap *repository.Snapshot) string {
	t.Helper()
	r := Open(t, st)
	target := t.TempDir()
	res := restorer.New(r, restorer.Options{Target: target})
	if err := res.Restore(context.Background(), snap.Tree); err != nil {
		t.Fatalf("restore %s: %v", snap.ID.Short(), err)
	}
	if errs := res.Errors(); len(errs) > 0 {
		t.Fatalf("restore %s: %v", snap.ID.Short(), errs)
	}
	return filepath.Join(target, snap.Paths[0])
}

// AssertRestores restores snap and compares its files with want.
func AssertRestores(t testing.TB, st storage.Storage, snap *repository.Snapshot, want map[string][]byte) {
	t.Helper()
	got := Files(t, Restore(t, st, snap))
	if len(got) != len(want) {
		t.Fatalf("snapshot %s restores %d files, want %d", snap.ID.Short(), len(got), len(want))
	}
	for p, w := range want {
		if !bytes.Equal(got[p], w) {
			t.Fatalf("snapshot %s: %s differs after restore", snap.ID.Short(), p)
		}
	}
}

// Count returns the number of objects of a kind.
func Count(t testing.TB, st storage.Storage, k storage.Kind) int {
	t.Helper()
	n := 0
	if err := st.List(context.Background(), k, func(storage.FileInfo) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	return n
}

// Names returns the names of the objects of a kind.
func Names(t testing.TB, st storage.Storage, k storage.Kind) []string {
	t.Helper()
	var out []string
	if err := st.List(context.Background(), k, func(fi storage.FileInfo) error { out = append(out, fi.Name); return nil }); err != nil {
		t.Fatal(err)
	}
	return out
}
