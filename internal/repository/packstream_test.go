package repository

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/coffer-backup/coffer/internal/compress"
	"github.com/coffer-backup/coffer/internal/crypto"
	"github.com/coffer-backup/coffer/internal/keyring"
	"github.com/coffer-backup/coffer/internal/storage"
	"github.com/coffer-backup/coffer/internal/storage/local"
	"github.com/coffer-backup/coffer/internal/storage/mem"
)

// streamPack builds a finished, unassembled pack of blobs whose sealed
// sizes fall on both sides of the kernel-copy threshold and the staging
// buffer's size.
func streamPack(t *testing.T) (*finishedPack, [][]byte, crypto.KeyLookup, []byte, *BlobHasher) {
	t.Helper()
	lookup, k, repoID, h := testKeys(t)
	w, err := NewPackWriter(crypto.AES256GCM, 1, k, repoID, compress.Auto)
	if err != nil {
		t.Fatal(err)
	}
	o := crypto.Overhead + 1
	sizes := []int{0, 1, kernelCopyMin - o - 1, kernelCopyMin - o, stageSize - o, stageSize + 5, 3*stageSize + 7, 100, 100, 100}
	var blobs [][]byte
	for i, n := range sizes {
		b := randBytes(n) // random: stored raw, so sealed sizes are exact
		if i == 7 {
			b = bytes.Repeat([]byte("compressible "), 20000)
		}
		blobs = append(blobs, b)
		if err := w.Add(DataBlob, h.Sum(b), b); err != nil {
			t.Fatal(err)
		}
	}
	p, err := w.finishStream()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p, blobs, lookup, repoID, h
}

// writerOnly hides every method but Write, so WriteTo takes its buffered path.
type writerOnly struct{ w io.Writer }

func (w writerOnly) Write(p []byte) (int, error) { return w.w.Write(p) }

// TestPackStreamPaths: the pack streamed into a file (segments copied in
// the kernel), into a plain writer (through the staging buffer) and
// assembled in memory are the same bytes, and that pack verifies and opens.
func TestPackStreamPaths(t *testing.T) {
	p, blobs, lookup, repoID, h := streamPack(t)
	if err := p.verify(lookup, repoID, h, &verifyScratch{}); err != nil {
		t.Fatal(err)
	}
	assembled, err := p.Bytes(nil)
	if err != nil {
		t.Fatal(err)
	}
	var plain bytes.Buffer
	if n, err := p.WriteTo(writerOnly{&plain}); err != nil || n != p.Size() {
		t.Fatalf("WriteTo a writer: %d bytes, %v", n, err)
	}
	f, err := os.Create(filepath.Join(t.TempDir(), "pack"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if n, err := p.WriteTo(f); err != nil || n != p.Size() {
		t.Fatalf("WriteTo a file: %d bytes, %v", n, err)
	}
	fromFile, err := os.ReadFile(f.Name())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(assembled, plain.Bytes()) || !bytes.Equal(assembled, fromFile) {
		t.Fatal("the three ways of writing the pack disagree")
	}
	if int64(len(assembled)) != p.Size() {
		t.Fatalf("pack is %d bytes, Size says %d", len(assembled), p.Size())
	}
	if err := VerifyPack(p.id, assembled, lookup, repoID, h, p.entries); err != nil {
		t.Fatal(err)
	}
	r, err := NewPackReader(p.id, assembled[:crypto.HeaderSize], lookup, repoID)
	if err != nil {
		t.Fatal(err)
	}
	found := 0
	for _, e := range p.entries {
		b, err := r.OpenBlob(e, assembled[e.Offset:e.Offset+e.Length])
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range blobs {
			if bytes.Equal(b, want) {
				found++
				break
			}
		}
	}
	if found != len(blobs) {
		t.Fatalf("%d of %d blobs found in the pack", found, len(blobs))
	}
}

// TestPackStreamVerifyCatchesDamage: the read-back check fails when the
// spill file changed under it, when the layout does not match the
// directory, and when a segment would be taken from the wrong place.
func TestPackStreamVerifyCatchesDamage(t *testing.T) {
	cases := map[string]func(p *finishedPack){
		"flipped spill byte": func(p *finishedPack) {
			b := []byte{0}
			if _, err := p.spill.ReadAt(b, p.from[3]+20); err != nil {
				t.Fatal(err)
			}
			b[0] ^= 1
			if _, err := p.spill.WriteAt(b, p.from[3]+20); err != nil {
				t.Fatal(err)
			}
		},
		"segments swapped": func(p *finishedPack) {
			p.from[0], p.from[len(p.from)-1] = p.from[len(p.from)-1], p.from[0]
		},
		"entry moved": func(p *finishedPack) { p.entries[1].Offset++ },
		"truncated spill": func(p *finishedPack) {
			if err := p.spill.Truncate(p.from[5] + 10); err != nil {
				t.Fatal(err)
			}
		},
		"directory damaged": func(p *finishedPack) { p.tail[3] ^= 0x80 },
	}
	for name, damage := range cases {
		t.Run(name, func(t *testing.T) {
			p, _, lookup, repoID, h := streamPack(t)
			damage(p)
			if err := p.verify(lookup, repoID, h, &verifyScratch{}); err == nil {
				t.Fatal("damaged pack passed the read-back check")
			}
		})
	}
}

// TestSaveBlobStreamsAndKeepsNoReference runs writes through a local
// repository (streamed packs) and a memory one (assembled packs): callers
// reuse their buffers as soon as SaveBlob returns, and every blob still
// reads back as it was saved, across several packs.
func TestSaveBlobStreamsAndKeepsNoReference(t *testing.T) {
	for _, kind := range []string{"local", "mem"} {
		t.Run(kind, func(t *testing.T) {
			ctx := context.Background()
			var st storage.Storage = mem.New()
			if kind == "local" {
				l, err := local.Create(filepath.Join(t.TempDir(), "repo"))
				if err != nil {
					t.Fatal(err)
				}
				st = l
			}
			r, _, err := Init(ctx, st, InitOptions{Passphrase: []byte("pw"),
				KDF: keyring.KDFParams{Time: 1, MemoryKiB: 8 * 1024, Threads: 1}})
			if err != nil {
				t.Fatal(err)
			}
			r.cfg.PackSize = 1 << 20 // several packs
			r.StartWriting(ctx)
			buf := make([]byte, 300<<10)
			var ids []ID
			var want [][]byte
			for i := range 12 {
				copy(buf, randBytes(len(buf)))
				if i%2 == 1 {
					copy(buf, bytes.Repeat([]byte{byte(i)}, len(buf)))
				}
				want = append(want, bytes.Clone(buf))
				id, _, err := r.SaveBlob(ctx, DataBlob, buf)
				if err != nil {
					t.Fatal(err)
				}
				ids = append(ids, id)
				clear(buf) // the caller reuses its buffer at once
			}
			if err := r.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			if r.stats.Packs < 2 {
				t.Fatalf("%d packs written, want several", r.stats.Packs)
			}
			for i, id := range ids {
				got, err := r.LoadBlob(ctx, DataBlob, id)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, want[i]) {
					t.Fatalf("blob %d changed after its buffer was reused", i)
				}
			}
			var sizes int64
			err = st.List(ctx, storage.KindData, func(fi storage.FileInfo) error {
				sizes += fi.Size
				return nil
			})
			if err != nil || uint64(sizes) != r.stats.BytesPacked {
				t.Fatalf("packs hold %d bytes, stats say %d (%v)", sizes, r.stats.BytesPacked, err)
			}
		})
	}
}

// failingStream is a storage whose streamed saves fail after some bytes.
type failingStream struct {
	*local.Local
}

func (f failingStream) SaveStream(ctx context.Context, h storage.Handle, src io.WriterTo, size int64) error {
	return f.Local.SaveStream(ctx, h, writerToFunc(func(w io.Writer) (int64, error) {
		n, _ := src.WriteTo(&limitWriter{w: w, n: size / 2})
		return n, errors.New("device gone")
	}), size)
}

type writerToFunc func(io.Writer) (int64, error)

func (f writerToFunc) WriteTo(w io.Writer) (int64, error) { return f(w) }

type limitWriter struct {
	w io.Writer
	n int64
}

func (l *limitWriter) Write(p []byte) (int, error) {
	if int64(len(p)) > l.n {
		p = p[:l.n]
	}
	n, err := l.w.Write(p)
	l.n -= int64(n)
	if err == nil && n == 0 {
		err = io.ErrShortWrite
	}
	return n, err
}

// TestStreamedSaveFailureCommitsNothing: when the stream to storage breaks
// halfway, the save fails, no pack and no temporary file is left, and no
// index names the lost blobs.
func TestStreamedSaveFailureCommitsNothing(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "repo")
	l, err := local.Create(dir)
	if err != nil {
		t.Fatal(err)
	}
	r, _, err := Init(ctx, failingStream{l}, InitOptions{Passphrase: []byte("pw"),
		KDF: keyring.KDFParams{Time: 1, MemoryKiB: 8 * 1024, Threads: 1}})
	if err != nil {
		t.Fatal(err)
	}
	r.StartWriting(ctx)
	b := randBytes(500 << 10)
	if _, _, err := r.SaveBlob(ctx, DataBlob, b); err != nil {
		t.Fatal(err)
	}
	if err := r.Flush(ctx); err == nil || !bytes.Contains([]byte(err.Error()), []byte("device gone")) {
		t.Fatalf("flush over a broken stream: %v", err)
	}
	err = filepath.Walk(filepath.Join(dir, "data"), func(path string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			t.Errorf("left behind: %s", fi.Name())
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	if err := l.List(ctx, storage.KindIndex, func(storage.FileInfo) error { n++; return nil }); err != nil || n != 0 {
		t.Fatalf("%d index files after a failed flush (%v)", n, err)
	}
}
