package storagetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/coffer-backup/coffer/internal/storage"
)

// RunReadOnly runs the contract suite for read-only storage. newStorage
// returns ro, the storage under test, and base, a writable storage whose
// objects ro shows; the suite writes through base, reads through ro, and
// closes ro. Every write through ro must fail with storage.ErrForbidden and
// change nothing, and ro must declare Properties.ReadOnly.
func RunReadOnly(t *testing.T, newStorage func(t *testing.T) (ro, base storage.Storage)) {
	tests := []struct {
		name string
		fn   func(t *testing.T, ro, base storage.Storage)
	}{
		{"Reads", testReadOnlyReads},
		{"WritesRefused", testReadOnlyWritesRefused},
		{"InvalidHandles", testReadOnlyInvalidHandles},
		{"CanceledContext", testReadOnlyCanceled},
		{"Close", testReadOnlyClose},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ro, base := newStorage(t)
			t.Cleanup(func() {
				if err := ro.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
			})
			if !storage.PropertiesOf(ro).ReadOnly {
				t.Error("read-only storage does not declare Properties.ReadOnly")
			}
			tc.fn(t, ro, base)
		})
	}
}

// seed saves one object of every kind through base and returns them.
func seed(t *testing.T, base storage.Storage) map[storage.Handle][]byte {
	t.Helper()
	objs := map[storage.Handle][]byte{}
	for i, k := range storage.Kinds {
		h := handle(k, fmt.Sprintf("ro-%d", i))
		objs[h] = Content(h.String(), 1000+i)
		mustSave(t, base, h, objs[h])
	}
	return objs
}

// unchanged checks that base holds exactly objs.
func unchanged(t *testing.T, base storage.Storage, objs map[storage.Handle][]byte) {
	t.Helper()
	for _, k := range storage.Kinds {
		want := map[string]int64{}
		for h, b := range objs {
			if h.Kind == k {
				want[h.Name] = int64(len(b))
			}
		}
		if got := listAll(t, base, k); !equalSizes(got, want) {
			t.Errorf("%s holds %v, want %v", k, got, want)
		}
	}
	for h, b := range objs {
		if got := mustLoad(t, base, h, 0, -1); !bytes.Equal(got, b) {
			t.Errorf("%s changed", h)
		}
	}
}

func testReadOnlyReads(t *testing.T, ro, base storage.Storage) {
	ctx := context.Background()
	objs := seed(t, base)
	for h, b := range objs {
		if got := mustLoad(t, ro, h, 0, -1); !bytes.Equal(got, b) {
			t.Errorf("Load %s through the read-only storage differs", h)
		}
		if got := mustLoad(t, ro, h, 10, 20); !bytes.Equal(got, b[10:30]) {
			t.Errorf("range of %s differs", h)
		}
		if fi, err := ro.Stat(ctx, h); err != nil || fi.Size != int64(len(b)) {
			t.Errorf("Stat %s = %+v, %v", h, fi, err)
		}
	}
	unchanged(t, ro, objs)
	missing := storage.Handle{Kind: storage.KindData, Name: "missing"}
	if _, err := ro.Load(ctx, missing, 0, -1); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Load of a missing object: %v, want ErrNotFound", err)
	}
}

func testReadOnlyWritesRefused(t *testing.T, ro, base storage.Storage) {
	ctx := context.Background()
	objs := seed(t, base)
	for h := range objs {
		if err := ro.Save(ctx, h, []byte("other")); !errors.Is(err, storage.ErrForbidden) {
			t.Errorf("Save over %s: %v, want ErrForbidden", h, err)
		}
		if err := ro.Remove(ctx, h); !errors.Is(err, storage.ErrForbidden) {
			t.Errorf("Remove %s: %v, want ErrForbidden", h, err)
		}
	}
	fresh := storage.Handle{Kind: storage.KindLocks, Name: "fresh"}
	if err := ro.Save(ctx, fresh, []byte("lock")); !errors.Is(err, storage.ErrForbidden) {
		t.Errorf("Save of a new object: %v, want ErrForbidden", err)
	}
	if ss, ok := ro.(storage.StreamSaver); ok {
		data := []byte("streamed")
		err := ss.SaveStream(ctx, storage.Handle{Kind: storage.KindData, Name: "fresh"}, chunkedSource{data: data, step: 3}, int64(len(data)))
		if !errors.Is(err, storage.ErrForbidden) {
			t.Errorf("SaveStream: %v, want ErrForbidden", err)
		}
	}
	unchanged(t, base, objs)
}

func testReadOnlyInvalidHandles(t *testing.T, ro, _ storage.Storage) {
	ctx := context.Background()
	for _, h := range InvalidHandles() {
		if err := ro.Save(ctx, h, []byte("evil")); !errors.Is(err, storage.ErrInvalidName) {
			t.Errorf("Save %q/%q: %v, want ErrInvalidName", h.Kind, h.Name, err)
		}
		if _, err := ro.Load(ctx, h, 0, -1); !errors.Is(err, storage.ErrInvalidName) {
			t.Errorf("Load %q/%q: %v, want ErrInvalidName", h.Kind, h.Name, err)
		}
		if _, err := ro.Stat(ctx, h); !errors.Is(err, storage.ErrInvalidName) {
			t.Errorf("Stat %q/%q: %v, want ErrInvalidName", h.Kind, h.Name, err)
		}
		if err := ro.Remove(ctx, h); !errors.Is(err, storage.ErrInvalidName) {
			t.Errorf("Remove %q/%q: %v, want ErrInvalidName", h.Kind, h.Name, err)
		}
	}
}

func testReadOnlyCanceled(t *testing.T, ro, base storage.Storage) {
	objs := seed(t, base)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	h := storage.Handle{Kind: storage.KindData, Name: "ro-3"}
	if _, err := ro.Load(ctx, h, 0, -1); !errors.Is(err, context.Canceled) {
		t.Errorf("Load with canceled context: %v, want context.Canceled", err)
	}
	if _, err := ro.Stat(ctx, h); !errors.Is(err, context.Canceled) {
		t.Errorf("Stat with canceled context: %v, want context.Canceled", err)
	}
	if err := ro.List(ctx, storage.KindData, func(storage.FileInfo) error { return nil }); !errors.Is(err, context.Canceled) {
		t.Errorf("List with canceled context: %v, want context.Canceled", err)
	}
	if err := ro.Save(ctx, storage.Handle{Kind: storage.KindData, Name: "new"}, nil); err == nil {
		t.Error("Save with canceled context succeeded")
	}
	unchanged(t, base, objs)
}

// testReadOnlyClose: after Close even the refused calls fail with
// storage.ErrClosed.
func testReadOnlyClose(t *testing.T, ro, base storage.Storage) {
	h := storage.Handle{Kind: storage.KindSnapshots, Name: "before-close"}
	mustSave(t, base, h, []byte("x"))
	checkClosed(t, Options{}, ro, h)
}
