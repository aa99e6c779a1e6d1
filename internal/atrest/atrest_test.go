package atrest_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/coffer-backup/coffer/internal/atrest"
	"github.com/coffer-backup/coffer/internal/storage"
	"github.com/coffer-backup/coffer/internal/storage/local"
	"github.com/coffer-backup/coffer/internal/storage/mem"
	"github.com/coffer-backup/coffer/internal/storage/storagetest"
)

var ns = atrest.Namespace{Client: "alice", Repo: "main"}

func testKey(seed byte) *atrest.Key {
	var k atrest.Key
	for i := range k {
		k[i] = seed + byte(i)
	}
	return &k
}

func TestContractMem(t *testing.T) {
	t.Parallel()
	storagetest.Run(t, func(*testing.T) storage.Storage { return atrest.New(mem.New(), testKey(1), ns) })
}

func TestContractLocal(t *testing.T) {
	t.Parallel()
	storagetest.Run(t, func(t *testing.T) storage.Storage {
		l, err := local.Create(filepath.Join(t.TempDir(), "repo"))
		if err != nil {
			t.Fatal(err)
		}
		return atrest.New(l, testKey(1), ns)
	})
}

// rewrite replaces the stored (sealed) bytes of h in base with edit's result.
func rewrite(t *testing.T, base storage.Storage, h storage.Handle, edit func([]byte) []byte) {
	t.Helper()
	ctx := context.Background()
	b, err := base.Load(ctx, h, 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	if err := base.Remove(ctx, h); err != nil {
		t.Fatal(err)
	}
	if err := base.Save(ctx, h, edit(bytes.Clone(b))); err != nil {
		t.Fatal(err)
	}
}

// threeSegments is content spanning three segments, the last one short.
var threeSegments = storagetest.Content("three", 2<<20+1000)

func TestTamperingFailsLoudly(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	h := storage.Handle{Kind: storage.KindData, Name: "ab01"}
	other := storage.Handle{Kind: storage.KindData, Name: "ab02"}
	stored := atrest.StoredSize(int64(len(threeSegments)))
	cases := []struct {
		name string
		edit func(t *testing.T, base storage.Storage)
	}{
		{"flip header", func(t *testing.T, b storage.Storage) { rewrite(t, b, h, flipAt(30)) }},
		{"flip MAC", func(t *testing.T, b storage.Storage) { rewrite(t, b, h, flipAt(atrest.HeaderSize-1)) }},
		{"flip table", func(t *testing.T, b storage.Storage) { rewrite(t, b, h, flipAt(atrest.HeaderSize+40)) }},
		{"flip first segment", func(t *testing.T, b storage.Storage) { rewrite(t, b, h, flipAt(atrest.HeaderSize+3*32+5)) }},
		{"flip last byte", func(t *testing.T, b storage.Storage) { rewrite(t, b, h, flipAt(int(stored-1))) }},
		{"truncated", func(t *testing.T, b storage.Storage) {
			rewrite(t, b, h, func(p []byte) []byte { return p[:len(p)-1] })
		}},
		{"truncated by a segment", func(t *testing.T, b storage.Storage) {
			rewrite(t, b, h, func(p []byte) []byte { return p[:len(p)-1000-16-32] })
		}},
		{"extended", func(t *testing.T, b storage.Storage) {
			rewrite(t, b, h, func(p []byte) []byte { return append(p, 0) })
		}},
		{"swapped with another object", func(t *testing.T, b storage.Storage) {
			theirs, err := b.Load(ctx, other, 0, -1)
			if err != nil {
				t.Fatal(err)
			}
			rewrite(t, b, h, func([]byte) []byte { return theirs })
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			base := mem.New()
			st := atrest.New(base, testKey(1), ns)
			if err := st.Save(ctx, h, threeSegments); err != nil {
				t.Fatal(err)
			}
			if err := st.Save(ctx, other, storagetest.Content("other", len(threeSegments))); err != nil {
				t.Fatal(err)
			}
			tc.edit(t, base)
			_, lerr := st.Load(ctx, h, 0, -1)
			_, verr := st.Verify(ctx, h)
			for _, err := range []error{lerr, verr} {
				if !errors.Is(err, atrest.ErrCorrupt) {
					t.Errorf("got %v, want ErrCorrupt", err)
				}
			}
		})
	}
}

func flipAt(i int) func([]byte) []byte {
	return func(p []byte) []byte { p[i] ^= 0x40; return p }
}

func TestWrongKeyOrNamespace(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	base := mem.New()
	h := storage.Handle{Kind: storage.KindSnapshots, Name: "s1"}
	if err := atrest.New(base, testKey(1), ns).Save(ctx, h, []byte("snapshot")); err != nil {
		t.Fatal(err)
	}
	for name, st := range map[string]*atrest.Storage{
		"wrong key":    atrest.New(base, testKey(2), ns),
		"other client": atrest.New(base, testKey(1), atrest.Namespace{Client: "bob", Repo: "main"}),
		"other repo":   atrest.New(base, testKey(1), atrest.Namespace{Client: "alice", Repo: "other"}),
	} {
		if _, err := st.Load(ctx, h, 0, -1); !errors.Is(err, atrest.ErrCorrupt) {
			t.Errorf("%s: Load = %v, want ErrCorrupt", name, err)
		}
		if _, err := st.Stat(ctx, h); !errors.Is(err, atrest.ErrCorrupt) {
			t.Errorf("%s: Stat = %v, want ErrCorrupt", name, err)
		}
	}
	// The object moved to another kind no longer opens either.
	b, _ := base.Load(ctx, h, 0, -1)
	moved := storage.Handle{Kind: storage.KindIndex, Name: "s1"}
	if err := base.Save(ctx, moved, b); err != nil {
		t.Fatal(err)
	}
	if _, err := atrest.New(base, testKey(1), ns).Load(ctx, moved, 0, -1); !errors.Is(err, atrest.ErrCorrupt) {
		t.Errorf("moved kind: %v, want ErrCorrupt", err)
	}
}

// countingBase records how many stored bytes Load reads.
type countingBase struct {
	storage.Storage
	mu   sync.Mutex
	read int64
}

func (c *countingBase) Load(ctx context.Context, h storage.Handle, off, n int64) ([]byte, error) {
	b, err := c.Storage.Load(ctx, h, off, n)
	c.mu.Lock()
	c.read += int64(len(b))
	c.mu.Unlock()
	return b, err
}

func TestRangeLoadReadsOnlyItsSegments(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	base := &countingBase{Storage: mem.New()}
	st := atrest.New(base, testKey(1), ns)
	h := storage.Handle{Kind: storage.KindData, Name: "ab03"}
	if err := st.Save(ctx, h, threeSegments); err != nil {
		t.Fatal(err)
	}
	base.read = 0
	off := int64(2<<20 + 10)
	got, err := st.Load(ctx, h, off, 100)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, threeSegments[off:off+100]) {
		t.Fatal("range content differs")
	}
	// Header, table and the short last segment with its tag.
	if want := int64(atrest.HeaderSize + 3*32 + 1000 + 16); base.read != want {
		t.Errorf("read %d stored bytes, want %d", base.read, want)
	}
}

type upload struct {
	io.WriterTo
	want []byte
	at   time.Time
}

func (u upload) WantSHA256() []byte    { return u.want }
func (u upload) ReceivedAt() time.Time { return u.at }

func TestUploadDigestAndReceived(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, base := range []storage.Storage{mem.New(), mustLocal(t)} {
		st := atrest.New(base, testKey(3), ns)
		data := storagetest.Content("up", 3000)
		bad := storage.Handle{Kind: storage.KindData, Name: "bad"}
		err := st.SaveStream(ctx, bad, upload{bytes.NewReader(data), make([]byte, 32), time.Now()}, int64(len(data)))
		if !errors.Is(err, atrest.ErrDigestMismatch) {
			t.Fatalf("wrong digest: %v", err)
		}
		if _, err := base.Stat(ctx, bad); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("refused upload left %v", err)
		}
		good := storage.Handle{Kind: storage.KindData, Name: "good"}
		at := time.Date(2027, 1, 2, 3, 4, 5, 6, time.UTC)
		sum := sha256.Sum256(data)
		if err := st.SaveStream(ctx, good, upload{bytes.NewReader(data), sum[:], at}, int64(len(data))); err != nil {
			t.Fatal(err)
		}
		o, err := st.Open(ctx, good)
		if err != nil {
			t.Fatal(err)
		}
		if !o.Received().Equal(at) || o.ContentSHA256() != sum || o.Size() != int64(len(data)) {
			t.Errorf("object = %v %x %d", o.Received(), o.ContentSHA256(), o.Size())
		}
		short := storage.Handle{Kind: storage.KindData, Name: "short"}
		if err := st.SaveStream(ctx, short, bytes.NewReader(data[:10]), 11); err == nil {
			t.Error("short source saved")
		}
		if err := st.SaveStream(ctx, short, bytes.NewReader(data[:12]), 11); err == nil {
			t.Error("long source saved")
		}
	}
}

func mustLocal(t *testing.T) storage.Storage {
	l, err := local.Create(filepath.Join(t.TempDir(), "repo"))
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// TestFrozenStateDirectory reads the objects a server built before this
// package existed wrote (testdata/state-v1), through a local base.
func TestFrozenStateDirectory(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	src := filepath.Join("testdata", "state-v1")
	raw, err := os.ReadFile(filepath.Join(src, "at-rest.key"))
	if err != nil || len(raw) != atrest.KeySize {
		t.Fatalf("key: %d bytes, %v", len(raw), err)
	}
	key := atrest.Key(raw)
	dir := filepath.Join(t.TempDir(), "main")
	if err := os.CopyFS(dir, os.DirFS(filepath.Join(src, "objects", "alice", "main"))); err != nil {
		t.Fatal(err)
	}
	// Servers of that time kept config in config/config; local keeps it in config.
	if err := os.Rename(filepath.Join(dir, "config", "config"), filepath.Join(dir, "config.moved")); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, "config")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(dir, "config.moved"), filepath.Join(dir, "config")); err != nil {
		t.Fatal(err)
	}
	l, err := local.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	st := atrest.New(l, &key, ns)
	defer func() { _ = st.Close() }()
	received := time.Date(2026, 12, 1, 10, 0, 0, 123456789, time.UTC)
	for _, o := range []struct {
		h storage.Handle
		n int
	}{
		{storage.Handle{Kind: storage.KindConfig, Name: "config"}, 300},
		{storage.Handle{Kind: storage.KindKeys, Name: "k1"}, 500},
		{storage.Handle{Kind: storage.KindData, Name: "ab12"}, 1<<20 + 100},
		{storage.Handle{Kind: storage.KindSnapshots, Name: "s1"}, 0},
		{storage.Handle{Kind: storage.KindIndex, Name: "i1"}, 4000},
	} {
		want := storagetest.Content(string(o.h.Kind)+"/"+o.h.Name, o.n)
		got, err := st.Load(ctx, o.h, 0, -1)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("Load %v: %d bytes, %v; want %d bytes of the frozen content", o.h, len(got), err, len(want))
		}
		if size, err := st.Verify(ctx, o.h); err != nil || size != int64(o.n) {
			t.Errorf("Verify %v = %d, %v", o.h, size, err)
		}
		ob, err := st.Open(ctx, o.h)
		if err != nil || !ob.Received().Equal(received) {
			t.Errorf("Open %v: %v", o.h, err)
		}
		listed := map[string]int64{}
		if err := st.List(ctx, o.h.Kind, func(fi storage.FileInfo) error { listed[fi.Name] = fi.Size; return nil }); err != nil {
			t.Fatal(err)
		}
		if len(listed) != 1 || listed[o.h.Name] != int64(o.n) {
			t.Errorf("List %s = %v", o.h.Kind, listed)
		}
	}
}

func TestContentSizeInvertsStoredSize(t *testing.T) {
	t.Parallel()
	for _, n := range []int64{0, 1, 100, 1<<20 - 1, 1 << 20, 1<<20 + 1, 5 << 20, 5<<20 + 7} {
		if got, ok := atrest.ContentSize(atrest.StoredSize(n)); !ok || got != n {
			t.Errorf("ContentSize(StoredSize(%d)) = %d, %v", n, got, ok)
		}
	}
	bad := 0
	for s := int64(0); s < atrest.StoredSize(3<<20); s += 997 {
		if n, ok := atrest.ContentSize(s); ok && atrest.StoredSize(n) != s {
			t.Fatalf("ContentSize(%d) = %d, whose stored size is %d", s, n, atrest.StoredSize(n))
		} else if !ok {
			bad++
		}
	}
	if bad == 0 {
		t.Error("every size was accepted")
	}
}

// readerSource hands its content to the sealer as a reader (ReadFrom).
type readerSource struct{ data []byte }

func (r readerSource) WriteTo(w io.Writer) (int64, error) {
	return io.Copy(w, struct{ io.Reader }{bytes.NewReader(r.data)})
}

func TestSaveStreamFromReader(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := atrest.New(mem.New(), testKey(4), ns)
	for i, n := range []int{0, 1, 1 << 20, 1<<20 + 5} {
		data := storagetest.Content("reader", n)
		h := storage.Handle{Kind: storage.KindData, Name: "r" + string(rune('a'+i))}
		if err := st.SaveStream(ctx, h, readerSource{data}, int64(n)); err != nil {
			t.Fatalf("%d bytes: %v", n, err)
		}
		if got, err := st.Load(ctx, h, 0, -1); err != nil || !bytes.Equal(got, data) {
			t.Errorf("%d bytes read back: %d, %v", n, len(got), err)
		}
		long := storage.Handle{Kind: storage.KindData, Name: "long" + string(rune('a'+i))}
		if err := st.SaveStream(ctx, long, readerSource{append(data, 'x')}, int64(n)); err == nil {
			t.Errorf("%d bytes declared, %d sent: saved", n, n+1)
		}
	}
}

// prefixMem is a memory base that also returns an object's first bytes
// with its size in one call, as the s3 backend does, and counts the Stats
// it is asked for.
type prefixMem struct {
	*mem.Mem
	stats, prefixes int
	mu              sync.Mutex
}

func (p *prefixMem) Stat(ctx context.Context, h storage.Handle) (storage.FileInfo, error) {
	p.mu.Lock()
	p.stats++
	p.mu.Unlock()
	return p.Mem.Stat(ctx, h)
}

func (p *prefixMem) LoadPrefix(ctx context.Context, h storage.Handle, n int64) ([]byte, int64, error) {
	p.mu.Lock()
	p.prefixes++
	p.mu.Unlock()
	fi, err := p.Mem.Stat(ctx, h)
	if err != nil {
		return nil, 0, err
	}
	b, err := p.Mem.Load(ctx, h, 0, min(n, fi.Size))
	return b, fi.Size, err
}

// Over a base that loads prefixes, the contract holds, opening an object
// asks for no Stat, and an object whose segment table outgrows the first
// read (more than 64 segments) still opens and reads to its end.
func TestPrefixBase(t *testing.T) {
	t.Parallel()
	storagetest.Run(t, func(*testing.T) storage.Storage { return atrest.New(&prefixMem{Mem: mem.New()}, testKey(1), ns) })

	base := &prefixMem{Mem: mem.New()}
	st := atrest.New(base, testKey(1), ns)
	ctx := context.Background()
	big := make([]byte, 65<<20+7)
	for i := range big {
		big[i] = byte(i * 7)
	}
	h := storage.Handle{Kind: storage.KindData, Name: "ab01"}
	if err := st.Save(ctx, h, big); err != nil {
		t.Fatal(err)
	}
	base.stats, base.prefixes = 0, 0
	got, err := st.Load(ctx, h, int64(len(big))-100, -1)
	if err != nil || !bytes.Equal(got, big[len(big)-100:]) {
		t.Fatalf("end of a 66-segment object: %d bytes, %v", len(got), err)
	}
	if base.stats != 0 || base.prefixes != 1 {
		t.Fatalf("open asked for %d Stats and %d prefixes; want 0 and 1", base.stats, base.prefixes)
	}
	// A truncated object is damage, not a short read.
	rewrite(t, base.Mem, h, func(b []byte) []byte { return b[:atrest.HeaderSize+10] })
	if _, err := st.Load(ctx, h, 0, 10); !errors.Is(err, atrest.ErrCorrupt) {
		t.Fatalf("truncated object: %v", err)
	}
}
