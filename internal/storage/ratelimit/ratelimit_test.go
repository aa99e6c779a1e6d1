package ratelimit_test

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/coffer-backup/coffer/internal/storage"
	"github.com/coffer-backup/coffer/internal/storage/local"
	"github.com/coffer-backup/coffer/internal/storage/mem"
	"github.com/coffer-backup/coffer/internal/storage/ratelimit"
	"github.com/coffer-backup/coffer/internal/storage/storagetest"
)

// fast is high enough that the contract suite's 20 MiB object costs
// little, low enough that every call still goes through the limiter.
var fast = ratelimit.Limits{Upload: 1 << 30, Download: 1 << 30}

// The contract suites run sequentially, before the rate tests (which are
// parallel to each other only): a 20 MiB object under the race detector
// would starve the rate tests' timers on a small machine.

func TestContractMem(t *testing.T) {
	storagetest.Run(t, func(*testing.T) storage.Storage { return ratelimit.New(mem.New(), fast) })
}

func TestContractLocal(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storage.Storage {
		st, err := local.Create(filepath.Join(t.TempDir(), "repo"))
		if err != nil {
			t.Fatal(err)
		}
		return ratelimit.New(st, fast)
	})
}

func TestNoLimitIsIdentity(t *testing.T) {
	st := mem.New()
	if got := ratelimit.New(st, ratelimit.Limits{}); got != storage.Storage(st) {
		t.Fatalf("New without limits returned %T, want the storage itself", got)
	}
}

func TestForwardsStreamingAndProperties(t *testing.T) {
	st, err := local.Create(filepath.Join(t.TempDir(), "repo"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	w := ratelimit.New(st, ratelimit.Limits{Upload: 1 << 20})
	if _, ok := w.(storage.StreamSaver); !ok {
		t.Error("wrapping a streaming backend lost SaveStream")
	}
	if _, ok := ratelimit.New(mem.New(), ratelimit.Limits{Upload: 1}).(storage.StreamSaver); ok {
		t.Error("wrapping a backend without SaveStream gained it")
	}
	if u, ok := w.(storage.Unwrapper); !ok || u.Unwrap() != storage.Storage(st) {
		t.Error("Unwrap does not return the wrapped storage")
	}
}

// measure runs move, which moves total bytes, and returns the rate.
func measure(t *testing.T, total int, move func()) float64 {
	t.Helper()
	start := time.Now()
	move()
	el := time.Since(start)
	return float64(total) / el.Seconds()
}

// within fails unless got is within [lo, hi] times limit.
func within(t *testing.T, what string, got float64, limit int64) {
	t.Helper()
	ratio := got / float64(limit)
	t.Logf("%s: %.0f B/s for a limit of %d B/s (%.3f)", what, got, limit, ratio)
	if ratio > 1.10 || ratio < 0.90 {
		t.Errorf("%s moved %.0f B/s under a limit of %d B/s: outside ±10%%", what, got, limit)
	}
}

// The rate tests move 3 s worth of data at a small limit: the limiter
// starts with an empty bucket, so the whole amount is paced.
const (
	testRate = 256 << 10
	testSecs = 3
)

func TestUploadRate(t *testing.T) {
	t.Parallel()
	st := ratelimit.New(mem.New(), ratelimit.Limits{Upload: testRate})
	ctx := context.Background()
	obj := storagetest.Content("up", 24<<10)
	n := testRate * testSecs / len(obj)
	got := measure(t, n*len(obj), func() {
		for i := range n {
			h := storage.Handle{Kind: storage.KindData, Name: "o" + string(rune('a'+i%26)) + string(rune('a'+i/26))}
			if err := st.Save(ctx, h, obj); err != nil {
				t.Fatal(err)
			}
		}
	})
	within(t, "Save", got, testRate)
}

func TestStreamRate(t *testing.T) {
	t.Parallel()
	base, err := local.Create(filepath.Join(t.TempDir(), "repo"))
	if err != nil {
		t.Fatal(err)
	}
	st := ratelimit.New(base, ratelimit.Limits{Upload: testRate})
	defer st.Close()
	data := storagetest.Content("stream", testRate*testSecs)
	h := storage.Handle{Kind: storage.KindData, Name: "big"}
	got := measure(t, len(data), func() {
		if err := st.(storage.StreamSaver).SaveStream(context.Background(), h, bytes.NewReader(data), int64(len(data))); err != nil {
			t.Fatal(err)
		}
	})
	within(t, "SaveStream", got, testRate)
	back, err := base.Load(context.Background(), h, 0, -1)
	if err != nil || !bytes.Equal(back, data) {
		t.Fatalf("streamed object differs (%v)", err)
	}
}

func TestDownloadRate(t *testing.T) {
	t.Parallel()
	base := mem.New()
	h := storage.Handle{Kind: storage.KindData, Name: "big"}
	data := storagetest.Content("down", 1<<20)
	if err := base.Save(context.Background(), h, data); err != nil {
		t.Fatal(err)
	}
	// Uploads unlimited: only downloads are paced.
	st := ratelimit.New(base, ratelimit.Limits{Download: testRate})
	const piece = 16 << 10
	n := testRate * testSecs / piece
	got := measure(t, n*piece, func() {
		for i := range n {
			b, err := st.Load(context.Background(), h, int64(i*piece%len(data)), piece)
			if err != nil || len(b) != piece {
				t.Fatalf("Load: %d bytes, %v", len(b), err)
			}
		}
	})
	within(t, "Load", got, testRate)
	start := time.Now()
	if err := st.Save(context.Background(), storage.Handle{Kind: storage.KindData, Name: "up"}, data); err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el > 500*time.Millisecond {
		t.Errorf("an upload took %v under a download-only limit", el)
	}
}

func TestCanceledWaitSavesNothing(t *testing.T) {
	base := mem.New()
	st := ratelimit.New(base, ratelimit.Limits{Upload: 1 << 10, Download: 1 << 10})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	h := storage.Handle{Kind: storage.KindData, Name: "slow"}
	start := time.Now()
	err := st.Save(ctx, h, make([]byte, 1<<20)) // 1024 s at 1 KiB/s
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Save past its deadline: %v, want DeadlineExceeded", err)
	}
	if el := time.Since(start); el > 2*time.Second {
		t.Errorf("a canceled wait took %v", el)
	}
	if _, err := base.Stat(context.Background(), h); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("the object was saved after the wait failed: %v", err)
	}
}

func TestParseRate(t *testing.T) {
	good := map[string]int64{
		"0": 0, "1024": 1 << 20, "20MiB/s": 20 << 20, "20MiB": 20 << 20, "5M/s": 5 << 20,
		" 512 ": 512 << 10, "1.5MiB/s": 3 << 19, "100kB/s": 100000, "0B/s": 0, "1G": 1 << 30,
	}
	for in, want := range good {
		got, err := ratelimit.ParseRate(in)
		if err != nil || got != want {
			t.Errorf("ParseRate(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "-1", "1.5", "fast", "20MiB/h", "2TiB/s", "99999999999999999999", "1e3", "/s"} {
		if n, err := ratelimit.ParseRate(in); err == nil || !errors.Is(err, ratelimit.ErrSyntax) {
			t.Errorf("ParseRate(%q) = %d, %v; want an ErrSyntax error", in, n, err)
		}
	}
}

func FuzzParseRate(f *testing.F) {
	for _, s := range []string{"0", "1024", "20MiB/s", "1.5", "-3", "5 kB/s", "1TiB"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ratelimit.ParseRate(s)
		if err != nil {
			if !errors.Is(err, ratelimit.ErrSyntax) {
				t.Fatalf("ParseRate(%q): error %v does not wrap ErrSyntax", s, err)
			}
			return
		}
		if n < 0 || n > 1<<40 {
			t.Fatalf("ParseRate(%q) = %d, outside [0, 1 TiB/s]", s, n)
		}
	})
}
