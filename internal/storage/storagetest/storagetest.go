// Package storagetest is the contract test suite every storage.Storage
// implementation runs, so all backends obey the rules documented on the interface.
package storagetest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"

	"github.com/coffer-backup/coffer/internal/storage"
)

// Options adapts the suite to a backend's declared restrictions.
type Options struct {
	// AppendOnly backends refuse Remove with storage.ErrForbidden, except
	// for the kinds listed in RemovableKinds.
	AppendOnly     bool
	RemovableKinds []storage.Kind

	// SkipLarge skips the 20 MiB object test (for backends whose transport
	// caps object size below that; none of coffer's may).
	SkipLarge bool
}

func (o Options) removable(k storage.Kind) bool {
	if !o.AppendOnly {
		return true
	}
	for _, r := range o.RemovableKinds {
		if r == k {
			return true
		}
	}
	return false
}

// Run runs the contract suite with default options. newStorage must return
// a fresh, empty storage for each call; the suite closes it.
func Run(t *testing.T, newStorage func(t *testing.T) storage.Storage) {
	RunWithOptions(t, Options{}, newStorage)
}

// RunWithOptions runs the contract suite against backends created by newStorage.
func RunWithOptions(t *testing.T, opts Options, newStorage func(t *testing.T) storage.Storage) {
	tests := []struct {
		name string
		fn   func(*testing.T, Options, storage.Storage)
	}{
		{"SaveLoad", testSaveLoad},
		{"LoadRanges", testLoadRanges},
		{"ZeroLength", testZeroLength},
		{"NotFound", testNotFound},
		{"SaveExisting", testSaveExisting},
		{"ListAllKinds", testListAllKinds},
		{"ListEmpty", testListEmpty},
		{"ListCallbackError", testListCallbackError},
		{"Remove", testRemove},
		{"InvalidHandles", testInvalidHandles},
		{"ConcurrentSaves", testConcurrentSaves},
		{"ConcurrentSameName", testConcurrentSameName},
		{"Large", testLarge},
		{"CanceledContext", testCanceledContext},
		{"CancelDuringList", testCancelDuringList},
		{"BufferOwnership", testBufferOwnership},
		{"SaveStream", testSaveStream},
		{"Close", testClose},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st := newStorage(t)
			t.Cleanup(func() {
				if err := st.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
			})
			tc.fn(t, opts, st)
		})
	}
}

// Content returns deterministic test content of size n derived from seed:
// the SHA-256 of seed, hex-encoded, repeated. Backend-specific tests use it
// to make stored objects self-verifying.
func Content(seed string, n int) []byte {
	sum := sha256.Sum256([]byte(seed))
	unit := []byte(hex.EncodeToString(sum[:]))
	out := bytes.Repeat(unit, n/len(unit)+1)
	return out[:n]
}

// handle makes a valid handle for kind k.
func handle(k storage.Kind, name string) storage.Handle {
	if k == storage.KindConfig {
		return storage.Handle{Kind: k, Name: "config"}
	}
	return storage.Handle{Kind: k, Name: name}
}

func mustSave(t *testing.T, st storage.Storage, h storage.Handle, data []byte) {
	t.Helper()
	if err := st.Save(context.Background(), h, data); err != nil {
		t.Fatalf("Save %v: %v", h, err)
	}
}

func mustLoad(t *testing.T, st storage.Storage, h storage.Handle, off, n int64) []byte {
	t.Helper()
	b, err := st.Load(context.Background(), h, off, n)
	if err != nil {
		t.Fatalf("Load %v [%d,%d]: %v", h, off, n, err)
	}
	return b
}

func listAll(t *testing.T, st storage.Storage, k storage.Kind) map[string]int64 {
	t.Helper()
	got := map[string]int64{}
	err := st.List(context.Background(), k, func(fi storage.FileInfo) error {
		if _, dup := got[fi.Name]; dup {
			t.Errorf("List %s reported %q twice", k, fi.Name)
		}
		got[fi.Name] = fi.Size
		return nil
	})
	if err != nil {
		t.Fatalf("List %s: %v", k, err)
	}
	return got
}

func testSaveLoad(t *testing.T, _ Options, st storage.Storage) {
	ctx := context.Background()
	for i, k := range storage.Kinds {
		h := handle(k, fmt.Sprintf("obj-%d_%s", i, k))
		data := Content(h.String(), 1000+i*37)
		mustSave(t, st, h, data)
		if got := mustLoad(t, st, h, 0, -1); !bytes.Equal(got, data) {
			t.Errorf("Load %v: got %d bytes, want the %d saved", h, len(got), len(data))
		}
		if got := mustLoad(t, st, h, 0, int64(len(data))); !bytes.Equal(got, data) {
			t.Errorf("Load %v with explicit length differs", h)
		}
		fi, err := st.Stat(ctx, h)
		if err != nil {
			t.Fatalf("Stat %v: %v", h, err)
		}
		if fi.Size != int64(len(data)) || fi.Name != h.Name {
			t.Errorf("Stat %v = %+v, want name %q size %d", h, fi, h.Name, len(data))
		}
	}
}

func testLoadRanges(t *testing.T, _ Options, st storage.Storage) {
	ctx := context.Background()
	h := storage.Handle{Kind: storage.KindData, Name: "ab0123ranges"}
	data := Content("ranges", 4096+17)
	size := int64(len(data))
	mustSave(t, st, h, data)

	good := []struct{ off, n int64 }{
		{0, 0}, {0, 1}, {1, 1}, {0, size}, {size - 1, 1}, {100, 1000},
		{size, 0}, {size, -1}, {10, -1}, {size - 1, -1}, {0, -5}, {7, -100},
	}
	for _, r := range good {
		got, err := st.Load(ctx, h, r.off, r.n)
		if err != nil {
			t.Errorf("Load [%d,%d]: %v", r.off, r.n, err)
			continue
		}
		end := size
		if r.n >= 0 {
			end = r.off + r.n
		}
		if !bytes.Equal(got, data[r.off:end]) {
			t.Errorf("Load [%d,%d]: got %d bytes, content differs from data[%d:%d]", r.off, r.n, len(got), r.off, end)
		}
	}

	bad := []struct{ off, n int64 }{
		{size + 1, -1}, {size + 1, 0}, {size, 1}, {0, size + 1}, {size - 1, 2},
		{1 << 40, 1}, {1, 1<<63 - 1}, {-1, 1}, {-1, -1},
	}
	for _, r := range bad {
		got, err := st.Load(ctx, h, r.off, r.n)
		if !errors.Is(err, storage.ErrRange) {
			t.Errorf("Load [%d,%d] = %d bytes, %v; want ErrRange", r.off, r.n, len(got), err)
		}
	}
}

func testZeroLength(t *testing.T, _ Options, st storage.Storage) {
	ctx := context.Background()
	for _, k := range storage.Kinds {
		h := handle(k, "empty")
		mustSave(t, st, h, nil)
		if got := mustLoad(t, st, h, 0, -1); len(got) != 0 {
			t.Errorf("Load %v: %d bytes, want 0", h, len(got))
		}
		if got := mustLoad(t, st, h, 0, 0); len(got) != 0 {
			t.Errorf("Load %v [0,0]: %d bytes, want 0", h, len(got))
		}
		if _, err := st.Load(ctx, h, 0, 1); !errors.Is(err, storage.ErrRange) {
			t.Errorf("Load %v [0,1] of empty object: %v, want ErrRange", h, err)
		}
		if _, err := st.Load(ctx, h, 1, -1); !errors.Is(err, storage.ErrRange) {
			t.Errorf("Load %v [1,-1] of empty object: %v, want ErrRange", h, err)
		}
		fi, err := st.Stat(ctx, h)
		if err != nil || fi.Size != 0 {
			t.Errorf("Stat %v = %+v, %v; want size 0", h, fi, err)
		}
		if got := listAll(t, st, k); len(got) != 1 || got[h.Name] != 0 {
			t.Errorf("List %s = %v, want only %s of size 0", k, got, h.Name)
		}
		if err := st.Save(ctx, h, nil); !errors.Is(err, storage.ErrExists) {
			t.Errorf("second Save of empty %v: %v, want ErrExists", h, err)
		}
	}
}

func testNotFound(t *testing.T, opts Options, st storage.Storage) {
	ctx := context.Background()
	// One object present so a backend cannot pass by having no storage at all.
	mustSave(t, st, storage.Handle{Kind: storage.KindData, Name: "present"}, []byte("x"))
	for _, k := range storage.Kinds {
		h := handle(k, "missing")
		if _, err := st.Load(ctx, h, 0, -1); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("Load %v: %v, want ErrNotFound", h, err)
		}
		if _, err := st.Load(ctx, h, 0, 0); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("Load %v [0,0]: %v, want ErrNotFound", h, err)
		}
		if _, err := st.Stat(ctx, h); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("Stat %v: %v, want ErrNotFound", h, err)
		}
		err := st.Remove(ctx, h)
		if opts.removable(k) {
			if !errors.Is(err, storage.ErrNotFound) {
				t.Errorf("Remove %v: %v, want ErrNotFound", h, err)
			}
		} else if !errors.Is(err, storage.ErrNotFound) && !errors.Is(err, storage.ErrForbidden) {
			t.Errorf("Remove %v on append-only: %v, want ErrForbidden or ErrNotFound", h, err)
		}
	}
}

func testSaveExisting(t *testing.T, _ Options, st storage.Storage) {
	ctx := context.Background()
	for _, k := range storage.Kinds {
		h := handle(k, "dup")
		orig := Content("orig"+string(k), 300)
		mustSave(t, st, h, orig)
		for _, other := range [][]byte{Content("other", 300), Content("longer", 900), nil} {
			if err := st.Save(ctx, h, other); !errors.Is(err, storage.ErrExists) {
				t.Errorf("Save over %v: %v, want ErrExists", h, err)
			}
		}
		if got := mustLoad(t, st, h, 0, -1); !bytes.Equal(got, orig) {
			t.Errorf("%v changed after a refused Save", h)
		}
		if got := listAll(t, st, k); len(got) != 1 || got[h.Name] != int64(len(orig)) {
			t.Errorf("List %s after refused Saves = %v", k, got)
		}
	}
}

func testListAllKinds(t *testing.T, _ Options, st storage.Storage) {
	want := map[storage.Kind]map[string]int64{}
	for i, k := range storage.Kinds {
		want[k] = map[string]int64{}
		n := 1
		if k != storage.KindConfig {
			n = 3 + i
		}
		for j := 0; j < n; j++ {
			// Data names start with varied prefixes so sharded layouts are exercised.
			h := handle(k, fmt.Sprintf("%02x%s-%d", j*37%256, k, j))
			data := Content(h.String(), 10*j+i)
			mustSave(t, st, h, data)
			want[k][h.Name] = int64(len(data))
		}
	}
	for _, k := range storage.Kinds {
		got := listAll(t, st, k)
		if !equalSizes(got, want[k]) {
			t.Errorf("List %s = %v, want %v", k, got, want[k])
		}
	}
	if err := st.List(context.Background(), storage.Kind("bogus"), func(storage.FileInfo) error { return nil }); !errors.Is(err, storage.ErrInvalidName) {
		t.Errorf("List of unknown kind: %v, want ErrInvalidName", err)
	}
}

func equalSizes(a, b map[string]int64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func testListEmpty(t *testing.T, _ Options, st storage.Storage) {
	for _, k := range storage.Kinds {
		if got := listAll(t, st, k); len(got) != 0 {
			t.Errorf("List %s on empty storage = %v", k, got)
		}
	}
	// Objects of one kind never show up under another.
	mustSave(t, st, storage.Handle{Kind: storage.KindIndex, Name: "only"}, []byte("i"))
	for _, k := range storage.Kinds {
		got := listAll(t, st, k)
		if k == storage.KindIndex {
			if len(got) != 1 {
				t.Errorf("List index = %v, want one object", got)
			}
		} else if len(got) != 0 {
			t.Errorf("List %s = %v, want empty", k, got)
		}
	}
}

func testListCallbackError(t *testing.T, _ Options, st storage.Storage) {
	for i := 0; i < 5; i++ {
		mustSave(t, st, storage.Handle{Kind: storage.KindSnapshots, Name: fmt.Sprintf("s%d", i)}, []byte("s"))
	}
	sentinel := errors.New("stop here")
	calls := 0
	err := st.List(context.Background(), storage.KindSnapshots, func(storage.FileInfo) error {
		calls++
		return sentinel
	})
	if !errors.Is(err, sentinel) {
		t.Errorf("List returned %v, want the callback's error", err)
	}
	if calls != 1 {
		t.Errorf("callback called %d times after returning an error, want 1", calls)
	}
}

func testRemove(t *testing.T, opts Options, st storage.Storage) {
	ctx := context.Background()
	for _, k := range storage.Kinds {
		h := handle(k, "gone")
		keep := handle(k, "kept")
		mustSave(t, st, h, []byte("remove me"))
		if k != storage.KindConfig {
			mustSave(t, st, keep, []byte("keep me"))
		}
		err := st.Remove(ctx, h)
		if !opts.removable(k) {
			if !errors.Is(err, storage.ErrForbidden) {
				t.Errorf("Remove %v on append-only storage: %v, want ErrForbidden", h, err)
			}
			if got := mustLoad(t, st, h, 0, -1); string(got) != "remove me" {
				t.Errorf("%v altered by a forbidden Remove", h)
			}
			continue
		}
		if err != nil {
			t.Fatalf("Remove %v: %v", h, err)
		}
		if _, err := st.Stat(ctx, h); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("Stat after Remove %v: %v, want ErrNotFound", h, err)
		}
		if _, err := st.Load(ctx, h, 0, -1); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("Load after Remove %v: %v, want ErrNotFound", h, err)
		}
		if err := st.Remove(ctx, h); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("second Remove %v: %v, want ErrNotFound", h, err)
		}
		got := listAll(t, st, k)
		if _, ok := got[h.Name]; ok && k != storage.KindConfig {
			t.Errorf("List %s still reports removed %s", k, h.Name)
		}
		if k == storage.KindConfig && len(got) != 0 {
			t.Errorf("List config after Remove = %v", got)
		}
		if k != storage.KindConfig {
			if string(mustLoad(t, st, keep, 0, -1)) != "keep me" {
				t.Errorf("Remove %v disturbed %v", h, keep)
			}
		}
		// The name is free again.
		mustSave(t, st, h, []byte("again"))
		if string(mustLoad(t, st, h, 0, -1)) != "again" {
			t.Errorf("re-saved %v has wrong content", h)
		}
	}
}

// InvalidHandles lists handles every backend must refuse with
// storage.ErrInvalidName. Exported so backend tests can also check that
// refusing them touched nothing.
func InvalidHandles() []storage.Handle {
	d := storage.KindData
	return []storage.Handle{
		{Kind: d, Name: ""},
		{Kind: d, Name: "."},
		{Kind: d, Name: ".."},
		{Kind: d, Name: "../config"},
		{Kind: d, Name: "../../etc"},
		{Kind: d, Name: "ab/cd"},
		{Kind: d, Name: "/abs"},
		{Kind: d, Name: "ab\x00cd"},
		{Kind: d, Name: "ABCD"},
		{Kind: d, Name: "abC"},
		{Kind: d, Name: "a b"},
		{Kind: d, Name: "a\\b"},
		{Kind: d, Name: ".tmp-123"},
		{Kind: d, Name: "é"},
		{Kind: d, Name: strings.Repeat("a", 129)},
		{Kind: d, Name: strings.Repeat("a", 4096)},
		{Kind: storage.KindSnapshots, Name: "x/../../y"},
		{Kind: storage.KindConfig, Name: "other"},
		{Kind: storage.KindConfig, Name: ""},
		{Kind: storage.KindConfig, Name: "../config"},
		{Kind: storage.Kind(""), Name: "abc"},
		{Kind: storage.Kind("bogus"), Name: "abc"},
		{Kind: storage.Kind("Data"), Name: "abc"},
		{Kind: storage.Kind("data/.."), Name: "abc"},
		{Kind: storage.Kind(".."), Name: "config"},
	}
}

func testInvalidHandles(t *testing.T, _ Options, st storage.Storage) {
	ctx := context.Background()
	// A valid 128-character name is accepted: the limit is not off by one.
	long := storage.Handle{Kind: storage.KindData, Name: strings.Repeat("a", 128)}
	mustSave(t, st, long, []byte("long"))
	mustSave(t, st, storage.Handle{Kind: storage.KindConfig, Name: "config"}, []byte("cfg"))

	for _, h := range InvalidHandles() {
		if err := st.Save(ctx, h, []byte("evil")); !errors.Is(err, storage.ErrInvalidName) {
			t.Errorf("Save %q/%q: %v, want ErrInvalidName", h.Kind, h.Name, err)
		}
		if _, err := st.Load(ctx, h, 0, -1); !errors.Is(err, storage.ErrInvalidName) {
			t.Errorf("Load %q/%q: %v, want ErrInvalidName", h.Kind, h.Name, err)
		}
		if _, err := st.Stat(ctx, h); !errors.Is(err, storage.ErrInvalidName) {
			t.Errorf("Stat %q/%q: %v, want ErrInvalidName", h.Kind, h.Name, err)
		}
		if err := st.Remove(ctx, h); !errors.Is(err, storage.ErrInvalidName) {
			t.Errorf("Remove %q/%q: %v, want ErrInvalidName", h.Kind, h.Name, err)
		}
	}
	// Nothing was stored or removed by the refused calls.
	for _, k := range storage.Kinds {
		got := listAll(t, st, k)
		switch k {
		case storage.KindData:
			if len(got) != 1 || got[long.Name] != 4 {
				t.Errorf("List data after invalid calls = %v", got)
			}
		case storage.KindConfig:
			if len(got) != 1 || got["config"] != 3 {
				t.Errorf("List config after invalid calls = %v", got)
			}
		default:
			if len(got) != 0 {
				t.Errorf("List %s after invalid calls = %v", k, got)
			}
		}
	}
	if string(mustLoad(t, st, storage.Handle{Kind: storage.KindConfig, Name: "config"}, 0, -1)) != "cfg" {
		t.Error("config altered by invalid calls")
	}
}

func testConcurrentSaves(t *testing.T, _ Options, st storage.Storage) {
	const workers, each = 16, 8
	var wg sync.WaitGroup
	errs := make(chan error, workers*each)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				k := storage.KindData
				if i%2 == 1 {
					k = storage.KindIndex
				}
				h := storage.Handle{Kind: k, Name: fmt.Sprintf("%02x-w%d-i%d", (w*each+i)*7%256, w, i)}
				if err := st.Save(context.Background(), h, Content(h.String(), 500+w*10+i)); err != nil {
					errs <- fmt.Errorf("save %v: %w", h, err)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	total := 0
	for _, k := range []storage.Kind{storage.KindData, storage.KindIndex} {
		for name, size := range listAll(t, st, k) {
			h := storage.Handle{Kind: k, Name: name}
			got := mustLoad(t, st, h, 0, -1)
			if int64(len(got)) != size || !bytes.Equal(got, Content(h.String(), len(got))) {
				t.Errorf("%v: content does not match what was saved", h)
			}
			total++
		}
	}
	if total != workers*each {
		t.Errorf("listed %d objects, want %d", total, workers*each)
	}
}

func testConcurrentSameName(t *testing.T, _ Options, st storage.Storage) {
	const workers = 12
	h := storage.Handle{Kind: storage.KindLocks, Name: "contended"}
	var wg sync.WaitGroup
	results := make([]error, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[w] = st.Save(context.Background(), h, Content(fmt.Sprint(w), 2000+w))
		}()
	}
	wg.Wait()
	winner := -1
	for w, err := range results {
		switch {
		case err == nil:
			if winner >= 0 {
				t.Errorf("Saves %d and %d both succeeded on the same name", winner, w)
			}
			winner = w
		case !errors.Is(err, storage.ErrExists):
			t.Errorf("Save %d: %v, want nil or ErrExists", w, err)
		}
	}
	if winner < 0 {
		t.Fatal("no concurrent Save succeeded")
	}
	if got := mustLoad(t, st, h, 0, -1); !bytes.Equal(got, Content(fmt.Sprint(winner), 2000+winner)) {
		t.Errorf("stored object is not the winner's (%d bytes)", len(got))
	}
}

func testLarge(t *testing.T, opts Options, st storage.Storage) {
	if opts.SkipLarge {
		t.Skip("backend declares SkipLarge")
	}
	const size = 20 << 20
	h := storage.Handle{Kind: storage.KindData, Name: "ff00large"}
	data := Content("large", size)
	copy(data[size-7:], "THE-END")
	mustSave(t, st, h, data)
	got := mustLoad(t, st, h, 0, -1)
	if sha256.Sum256(got) != sha256.Sum256(data) {
		t.Fatalf("20 MiB object differs after a round trip (%d bytes back)", len(got))
	}
	if tail := mustLoad(t, st, h, size-7, -1); string(tail) != "THE-END" {
		t.Errorf("tail = %q", tail)
	}
	mid := mustLoad(t, st, h, 10<<20, 1<<20)
	if !bytes.Equal(mid, data[10<<20:11<<20]) {
		t.Error("middle range differs")
	}
	fi, err := st.Stat(context.Background(), h)
	if err != nil || fi.Size != size {
		t.Errorf("Stat = %+v, %v", fi, err)
	}
}

func testCanceledContext(t *testing.T, opts Options, st storage.Storage) {
	existing := storage.Handle{Kind: storage.KindData, Name: "exists"}
	mustSave(t, st, existing, []byte("data"))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()

	fresh := storage.Handle{Kind: storage.KindData, Name: "never"}
	if err := st.Save(ctx, fresh, Content("never", 1<<20)); !errors.Is(err, context.Canceled) {
		t.Errorf("Save with canceled context: %v, want context.Canceled", err)
	}
	if _, err := st.Stat(context.Background(), fresh); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("object saved under a canceled context exists: Stat = %v", err)
	}
	if _, err := st.Load(ctx, existing, 0, -1); !errors.Is(err, context.Canceled) {
		t.Errorf("Load with canceled context: %v, want context.Canceled", err)
	}
	if _, err := st.Stat(ctx, existing); !errors.Is(err, context.Canceled) {
		t.Errorf("Stat with canceled context: %v, want context.Canceled", err)
	}
	called := false
	err := st.List(ctx, storage.KindData, func(storage.FileInfo) error { called = true; return nil })
	if !errors.Is(err, context.Canceled) {
		t.Errorf("List with canceled context: %v, want context.Canceled", err)
	}
	if called {
		t.Error("List called fn under a canceled context")
	}
	if opts.removable(storage.KindData) {
		if err := st.Remove(ctx, existing); !errors.Is(err, context.Canceled) {
			t.Errorf("Remove with canceled context: %v, want context.Canceled", err)
		}
	}
	if string(mustLoad(t, st, existing, 0, -1)) != "data" {
		t.Error("object altered by calls under a canceled context")
	}
}

func testCancelDuringList(t *testing.T, _ Options, st storage.Storage) {
	for i := 0; i < 20; i++ {
		mustSave(t, st, storage.Handle{Kind: storage.KindData, Name: fmt.Sprintf("%02x-c%d", i*13, i)}, []byte{byte(i)})
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	calls := 0
	err := st.List(ctx, storage.KindData, func(storage.FileInfo) error {
		calls++
		cancel()
		return nil
	})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("List canceled after the first object returned %v after %d calls; want context.Canceled, never a short listing reported as complete", err, calls)
	}
	if calls != 1 {
		t.Errorf("List went on calling fn %d times after cancellation", calls)
	}
}

func testBufferOwnership(t *testing.T, _ Options, st storage.Storage) {
	h := storage.Handle{Kind: storage.KindKeys, Name: "owned"}
	data := []byte("original content")
	mustSave(t, st, h, data)
	copy(data, "XXXXXXXX")
	got := mustLoad(t, st, h, 0, -1)
	if string(got) != "original content" {
		t.Fatalf("changing the caller's buffer after Save changed the object: %q", got)
	}
	copy(got, "YYYYYYYY")
	if again := mustLoad(t, st, h, 0, -1); string(again) != "original content" {
		t.Errorf("changing a Load result changed the object: %q", again)
	}
}

// chunkedSource writes its data in pieces of step bytes, then fails with
// err if set, having written what it wrote.
type chunkedSource struct {
	data []byte
	step int
	err  error
}

func (c chunkedSource) WriteTo(w io.Writer) (int64, error) {
	var n int64
	for rest := c.data; len(rest) > 0; {
		k := min(c.step, len(rest))
		m, err := w.Write(rest[:k])
		n += int64(m)
		if err != nil {
			return n, err
		}
		rest = rest[k:]
	}
	return n, c.err
}

// testSaveStream checks storage.StreamSaver for backends that have it: the
// object is stored as streamed; an existing name is refused and left
// untouched; a source that fails, or writes fewer or more bytes than
// announced, or a canceled context, leaves nothing visible.
func testSaveStream(t *testing.T, _ Options, st storage.Storage) {
	ss, ok := st.(storage.StreamSaver)
	if !ok {
		t.Skip("backend does not stream saves")
	}
	ctx := context.Background()
	data := Content("stream", 3<<20+17)
	h := storage.Handle{Kind: storage.KindData, Name: "streamed"}
	if err := ss.SaveStream(ctx, h, chunkedSource{data: data, step: 100003}, int64(len(data))); err != nil {
		t.Fatalf("SaveStream: %v", err)
	}
	if got := mustLoad(t, st, h, 0, -1); !bytes.Equal(got, data) {
		t.Fatalf("streamed object differs: %d bytes, want %d", len(got), len(data))
	}
	other := Content("other", 10)
	if err := ss.SaveStream(ctx, h, chunkedSource{data: other, step: 4}, int64(len(other))); !errors.Is(err, storage.ErrExists) {
		t.Fatalf("SaveStream over an existing object: %v, want ErrExists", err)
	}
	if got := mustLoad(t, st, h, 0, -1); !bytes.Equal(got, data) {
		t.Fatal("a refused SaveStream changed the existing object")
	}
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	bad := map[string]struct {
		ctx  context.Context
		src  io.WriterTo
		size int64
	}{
		"source fails":   {ctx, chunkedSource{data: data[:1000], step: 300, err: errors.New("source broke")}, int64(len(data))},
		"short source":   {ctx, chunkedSource{data: data[:1000], step: 300}, 1001},
		"long source":    {ctx, chunkedSource{data: data[:1000], step: 300}, 999},
		"canceled first": {canceled, chunkedSource{data: data[:1000], step: 300}, 1000},
	}
	for name, c := range bad {
		bh := storage.Handle{Kind: storage.KindData, Name: "bad-" + strings.ReplaceAll(name, " ", "-")}
		if err := ss.SaveStream(c.ctx, bh, c.src, c.size); err == nil {
			t.Errorf("%s: SaveStream succeeded", name)
		}
		if _, err := st.Stat(ctx, bh); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("%s: object visible after a failed SaveStream (Stat: %v)", name, err)
		}
	}
	if got := listAll(t, st, storage.KindData); len(got) != 1 {
		t.Errorf("after failed streams the data kind lists %v, want only the streamed object", got)
	}
}

// testClose checks that every call after Close fails with storage.ErrClosed
// (Remove only where the backend allows it) and that a second Close
// returns nil.
func testClose(t *testing.T, opts Options, st storage.Storage) {
	h := storage.Handle{Kind: storage.KindSnapshots, Name: "before-close"}
	mustSave(t, st, h, []byte("x"))
	checkClosed(t, opts, st, h)
}

// checkClosed closes st, which holds h, and checks every call after it.
func checkClosed(t *testing.T, opts Options, st storage.Storage, h storage.Handle) {
	ctx := context.Background()
	if err := st.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	_, loadErr := st.Load(ctx, h, 0, -1)
	_, statErr := st.Stat(ctx, h)
	errs := map[string]error{
		"Load": loadErr,
		"Stat": statErr,
		"Save": st.Save(ctx, storage.Handle{Kind: storage.KindSnapshots, Name: "after-close"}, []byte("y")),
		"List": st.List(ctx, storage.KindSnapshots, func(storage.FileInfo) error { return nil }),
	}
	if opts.removable(h.Kind) {
		errs["Remove"] = st.Remove(ctx, h)
	}
	if ss, ok := st.(storage.StreamSaver); ok {
		errs["SaveStream"] = ss.SaveStream(ctx, storage.Handle{Kind: storage.KindData, Name: "after-close"}, chunkedSource{data: []byte("z"), step: 1}, 1)
	}
	for op, err := range errs {
		if !errors.Is(err, storage.ErrClosed) {
			t.Errorf("%s after Close: %v, want ErrClosed", op, err)
		}
	}
	if err := st.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}
