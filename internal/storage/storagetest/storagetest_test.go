package storagetest_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/coffer-backup/coffer/internal/storage"
	"github.com/coffer-backup/coffer/internal/storage/mem"
	"github.com/coffer-backup/coffer/internal/storage/storagetest"
)

// appendOnly forbids Remove except for locks, as an append-only server does.
type appendOnly struct{ storage.Storage }

func (a appendOnly) Remove(ctx context.Context, h storage.Handle) error {
	if err := storage.ValidateHandle(h); err != nil {
		return err
	}
	if h.Kind == storage.KindLocks {
		return a.Storage.Remove(ctx, h)
	}
	return fmt.Errorf("remove %s: %w", h, storage.ErrForbidden)
}

func TestAppendOnlyOption(t *testing.T) {
	storagetest.RunWithOptions(t, storagetest.Options{AppendOnly: true, RemovableKinds: []storage.Kind{storage.KindLocks}},
		func(*testing.T) storage.Storage { return appendOnly{mem.New()} })
}

func TestContent(t *testing.T) {
	a := storagetest.Content("x", 100)
	if len(a) != 100 || string(a) != string(storagetest.Content("x", 100)) {
		t.Fatal("Content is not deterministic")
	}
	if string(a) == string(storagetest.Content("y", 100)) {
		t.Fatal("Content ignores its seed")
	}
	if len(storagetest.Content("x", 0)) != 0 {
		t.Fatal("Content(0) not empty")
	}
}

// Backends with one bug each. The suite must fail against every one of them.
type overwrites struct{ *mem.Mem }

func (o overwrites) Save(ctx context.Context, h storage.Handle, data []byte) error {
	_ = o.Mem.Remove(ctx, h)
	return o.Mem.Save(ctx, h, data)
}

type clampsRange struct{ *mem.Mem }

func (c clampsRange) Load(ctx context.Context, h storage.Handle, off, n int64) ([]byte, error) {
	b, err := c.Mem.Load(ctx, h, 0, -1)
	if err != nil {
		return nil, err
	}
	if off > int64(len(b)) || off < 0 {
		off = int64(len(b))
	}
	b = b[off:]
	if n >= 0 && n < int64(len(b)) {
		b = b[:n]
	}
	return b, nil
}

type ignoresCancel struct{ *mem.Mem }

func (i ignoresCancel) List(_ context.Context, k storage.Kind, fn func(storage.FileInfo) error) error {
	return i.Mem.List(context.Background(), k, fn)
}

type acceptsInvalid struct{ *mem.Mem }

func (a acceptsInvalid) Save(ctx context.Context, h storage.Handle, data []byte) error {
	if storage.ValidateHandle(h) != nil {
		return nil
	}
	return a.Mem.Save(ctx, h, data)
}

type plainNotFound struct{ *mem.Mem }

func (p plainNotFound) Stat(ctx context.Context, h storage.Handle) (storage.FileInfo, error) {
	fi, err := p.Mem.Stat(ctx, h)
	if errors.Is(err, storage.ErrNotFound) {
		return fi, errors.New("no such file")
	}
	return fi, err
}

type listsConfigAlways struct{ *mem.Mem }

func (l listsConfigAlways) List(ctx context.Context, k storage.Kind, fn func(storage.FileInfo) error) error {
	if k == storage.KindConfig {
		if err := ctx.Err(); err != nil {
			return err
		}
		return fn(storage.FileInfo{Name: "config"})
	}
	return l.Mem.List(ctx, k, fn)
}

type truncatesLarge struct{ *mem.Mem }

func (tl truncatesLarge) Save(ctx context.Context, h storage.Handle, data []byte) error {
	if len(data) > 16<<20 {
		data = data[:16<<20]
	}
	return tl.Mem.Save(ctx, h, data)
}

type ignoresClose struct{ *mem.Mem }

func (ignoresClose) Close() error { return nil }

// removesReadOnly claims to be read-only and refuses Save, but lets
// Remove through.
type removesReadOnly struct{ *mem.Mem }

func (removesReadOnly) Properties() storage.Properties { return storage.Properties{ReadOnly: true} }

func (r removesReadOnly) Save(ctx context.Context, h storage.Handle, _ []byte) error {
	if err := storage.ValidateHandle(h); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return storage.ErrForbidden
}

var buggy = map[string]func() storage.Storage{
	"removesReadOnly":   func() storage.Storage { return removesReadOnly{mem.New()} }, // run with RunReadOnly
	"ignoresClose":      func() storage.Storage { return ignoresClose{mem.New()} },
	"none":              func() storage.Storage { return mem.New() },
	"overwrites":        func() storage.Storage { return overwrites{mem.New()} },
	"clampsRange":       func() storage.Storage { return clampsRange{mem.New()} },
	"ignoresCancel":     func() storage.Storage { return ignoresCancel{mem.New()} },
	"acceptsInvalid":    func() storage.Storage { return acceptsInvalid{mem.New()} },
	"plainNotFound":     func() storage.Storage { return plainNotFound{mem.New()} },
	"listsConfigAlways": func() storage.Storage { return listsConfigAlways{mem.New()} },
	"truncatesLarge":    func() storage.Storage { return truncatesLarge{mem.New()} },
	"removesAppendOnly": func() storage.Storage { return mem.New() }, // run with AppendOnly
}

// catches names the subtest that must catch each bug.
var catches = map[string]string{
	"removesReadOnly":   "WritesRefused",
	"ignoresClose":      "Close",
	"overwrites":        "SaveExisting",
	"clampsRange":       "LoadRanges",
	"ignoresCancel":     "CancelDuringList",
	"acceptsInvalid":    "InvalidHandles",
	"plainNotFound":     "NotFound",
	"listsConfigAlways": "ListEmpty",
	"truncatesLarge":    "Large",
	"removesAppendOnly": "Remove",
}

const bugEnv = "COFFER_STORAGETEST_BUG"

// TestBuggyBackendHelper runs the suite against one buggy backend when
// re-executed by TestSuiteCatchesBugs; otherwise it does nothing.
func TestBuggyBackendHelper(t *testing.T) {
	name := os.Getenv(bugEnv)
	if name == "" {
		t.Skip("helper for TestSuiteCatchesBugs")
	}
	if name == "removesReadOnly" {
		storagetest.RunReadOnly(t, func(*testing.T) (storage.Storage, storage.Storage) {
			m := mem.New()
			return removesReadOnly{m}, m
		})
		return
	}
	opts := storagetest.Options{AppendOnly: name == "removesAppendOnly"}
	storagetest.RunWithOptions(t, opts, func(*testing.T) storage.Storage { return buggy[name]() })
}

func TestSuiteCatchesBugs(t *testing.T) {
	for name := range buggy {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			cmd := exec.Command(os.Args[0], "-test.run=^TestBuggyBackendHelper$", "-test.v") // #nosec G204 G702 -- re-executes this test binary
			cmd.Env = append(os.Environ(), bugEnv+"="+name)
			out, err := cmd.CombinedOutput()
			if name == "none" {
				if err != nil || !strings.Contains(string(out), "--- PASS: TestBuggyBackendHelper") {
					t.Fatalf("suite fails a correct backend: %v\n%s", err, out)
				}
				return
			}
			if err == nil {
				t.Fatalf("suite passed a backend with bug %q", name)
			}
			if want := "--- FAIL: TestBuggyBackendHelper/" + catches[name] + " "; !strings.Contains(string(out), want) {
				t.Fatalf("bug %q not caught by subtest %s: %v\n%s", name, catches[name], err, out)
			}
		})
	}
}
