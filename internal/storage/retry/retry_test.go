package retry_test

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/coffer-backup/coffer/internal/storage"
	"github.com/coffer-backup/coffer/internal/storage/local"
	"github.com/coffer-backup/coffer/internal/storage/mem"
	"github.com/coffer-backup/coffer/internal/storage/retry"
	"github.com/coffer-backup/coffer/internal/storage/storagetest"
)

var errFlaky = errors.New("connection reset")

// noSleep records the waits instead of sleeping.
type noSleep struct {
	mu    sync.Mutex
	waits []time.Duration
}

func (n *noSleep) sleep(ctx context.Context, d time.Duration) error {
	n.mu.Lock()
	n.waits = append(n.waits, d)
	n.mu.Unlock()
	return ctx.Err()
}

func fast(n *noSleep) retry.Options {
	return retry.Options{Sleep: n.sleep, Jitter: func(d time.Duration) time.Duration { return d }}
}

// flaky fails every other call of each kind with a transient error; every
// other Save, SaveStream and Remove fails after taking effect.
type flaky struct {
	storage.Storage
	mu    sync.Mutex
	calls map[string]int
}

func newFlaky(st storage.Storage) *flaky { return &flaky{Storage: st, calls: map[string]int{}} }

func (f *flaky) fail(op string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls[op]++
	return f.calls[op]%2 == 1
}

func (f *flaky) Save(ctx context.Context, h storage.Handle, data []byte) error {
	err := f.Storage.Save(ctx, h, data)
	if err == nil && f.fail("save") {
		return errFlaky // stored, but the caller never learns it
	}
	return err
}

func (f *flaky) saveStream(ctx context.Context, h storage.Handle, src io.WriterTo, size int64) error {
	err := f.Storage.(storage.StreamSaver).SaveStream(ctx, h, src, size)
	if err == nil && f.fail("savestream") {
		return errFlaky
	}
	return err
}

func (f *flaky) Remove(ctx context.Context, h storage.Handle) error {
	err := f.Storage.Remove(ctx, h)
	if err == nil && f.fail("remove") {
		return errFlaky
	}
	return err
}

func (f *flaky) Load(ctx context.Context, h storage.Handle, off, n int64) ([]byte, error) {
	if f.fail("load") {
		return nil, errFlaky
	}
	return f.Storage.Load(ctx, h, off, n)
}

func (f *flaky) Stat(ctx context.Context, h storage.Handle) (storage.FileInfo, error) {
	if f.fail("stat") {
		return storage.FileInfo{}, errFlaky
	}
	return f.Storage.Stat(ctx, h)
}

func (f *flaky) List(ctx context.Context, k storage.Kind, fn func(storage.FileInfo) error) error {
	if f.fail("list") {
		return errFlaky
	}
	return f.Storage.List(ctx, k, fn)
}

// flakyStream is flaky over a backend that streams.
type flakyStream struct{ *flaky }

func (f flakyStream) SaveStream(ctx context.Context, h storage.Handle, src io.WriterTo, size int64) error {
	return f.flaky.saveStream(ctx, h, src, size)
}

func newLocal(t *testing.T) *local.Local {
	l, err := local.Create(filepath.Join(t.TempDir(), "repo"))
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestContract(t *testing.T) {
	t.Parallel()
	storagetest.Run(t, func(t *testing.T) storage.Storage { return retry.New(newLocal(t), fast(&noSleep{})) })
}

// TestContractFlaky: through retries, a backend that fails half its calls
// (half of its writes after they took effect) obeys the whole contract.
func TestContractFlaky(t *testing.T) {
	t.Parallel()
	storagetest.Run(t, func(*testing.T) storage.Storage { return retry.New(newFlaky(mem.New()), fast(&noSleep{})) })
	storagetest.Run(t, func(t *testing.T) storage.Storage {
		return retry.New(flakyStream{newFlaky(newLocal(t))}, fast(&noSleep{}))
	})
}

func TestForwarding(t *testing.T) {
	t.Parallel()
	if _, ok := retry.New(mem.New(), retry.Options{}).(storage.StreamSaver); ok {
		t.Error("retry over mem claims to stream")
	}
	st := retry.New(newLocal(t), retry.Options{})
	if _, ok := st.(storage.StreamSaver); !ok {
		t.Error("retry over local does not stream")
	}
	if _, ok := st.(storage.Unwrapper).Unwrap().(*local.Local); !ok {
		t.Error("Unwrap does not return the local backend")
	}
	if p := storage.PropertiesOf(retry.New(propertied{mem.New()}, retry.Options{})); !p.Remote {
		t.Errorf("Properties not forwarded: %+v", p)
	}
}

type propertied struct{ *mem.Mem }

func (propertied) Properties() storage.Properties { return storage.Properties{Remote: true} }

// failing fails every call with err and counts them.
type failing struct {
	*mem.Mem
	err   error
	calls int
}

func (f *failing) Load(context.Context, storage.Handle, int64, int64) ([]byte, error) {
	f.calls++
	return nil, f.err
}

func TestBackoffAndAttempts(t *testing.T) {
	t.Parallel()
	ns := &noSleep{}
	f := &failing{Mem: mem.New(), err: errFlaky}
	st := retry.New(f, retry.Options{Attempts: 6, MinBackoff: time.Second, MaxBackoff: 10 * time.Second, Sleep: ns.sleep,
		Jitter: func(d time.Duration) time.Duration { return d }})
	_, err := st.Load(context.Background(), storage.Handle{Kind: storage.KindData, Name: "a"}, 0, -1)
	if !errors.Is(err, errFlaky) {
		t.Fatalf("Load: %v, want the last transient error", err)
	}
	if f.calls != 6 {
		t.Errorf("%d attempts, want 6", f.calls)
	}
	want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 10 * time.Second}
	if len(ns.waits) != len(want) {
		t.Fatalf("waits %v, want %v", ns.waits, want)
	}
	for i := range want {
		if ns.waits[i] != want[i] {
			t.Errorf("waits %v, want %v", ns.waits, want)
			break
		}
	}
	// Jitter takes away up to half of each wait.
	ns.waits = nil
	st = retry.New(&failing{Mem: mem.New(), err: errFlaky}, retry.Options{Attempts: 3, MinBackoff: time.Second, Sleep: ns.sleep,
		Jitter: func(time.Duration) time.Duration { return 0 }})
	_, _ = st.Load(context.Background(), storage.Handle{Kind: storage.KindData, Name: "a"}, 0, -1)
	if len(ns.waits) != 2 || ns.waits[0] != time.Second/2 || ns.waits[1] != time.Second {
		t.Errorf("waits with no jitter %v, want [500ms 1s]", ns.waits)
	}
}

func TestPermanentNotRetried(t *testing.T) {
	t.Parallel()
	for _, perm := range []error{
		storage.ErrNotFound, storage.ErrExists, storage.ErrInvalidName, storage.ErrRange, storage.ErrNoRepository,
		storage.ErrForbidden, storage.ErrClosed, fs.ErrPermission, context.Canceled, context.DeadlineExceeded,
	} {
		ns := &noSleep{}
		f := &failing{Mem: mem.New(), err: errors.Join(errors.New("load x"), perm)}
		st := retry.New(f, fast(ns))
		if _, err := st.Load(context.Background(), storage.Handle{Kind: storage.KindData, Name: "a"}, 0, -1); !errors.Is(err, perm) {
			t.Errorf("%v: Load returned %v", perm, err)
		}
		if f.calls != 1 || len(ns.waits) != 0 {
			t.Errorf("%v retried: %d calls, waits %v", perm, f.calls, ns.waits)
		}
	}
}

// TestCancelStopsWaiting: a canceled context ends the wait before a retry
// at once, with the default timer and an hour's backoff.
func TestCancelStopsWaiting(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	f := &failing{Mem: mem.New(), err: errFlaky}
	st := retry.New(f, retry.Options{MinBackoff: time.Hour, MaxBackoff: time.Hour})
	done := make(chan error, 1)
	go func() {
		_, err := st.Load(ctx, storage.Handle{Kind: storage.KindData, Name: "a"}, 0, -1)
		done <- err
	}()
	time.AfterFunc(20*time.Millisecond, cancel)
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Load: %v, want context.Canceled", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Load still waiting 30s after its context was canceled")
	}
	// A context canceled during the call is not retried at all.
	ctx2, cancel2 := context.WithCancel(context.Background())
	g := &cancelling{Mem: mem.New(), cancel: cancel2}
	ns := &noSleep{}
	if _, err := retry.New(g, fast(ns)).Stat(ctx2, storage.Handle{Kind: storage.KindData, Name: "a"}); !errors.Is(err, context.Canceled) || !errors.Is(err, errFlaky) || g.calls != 1 || len(ns.waits) != 0 {
		t.Errorf("Stat under a context canceled mid-call: %v after %d calls, waits %v", err, g.calls, ns.waits)
	}
}

type cancelling struct {
	*mem.Mem
	cancel func()
	calls  int
}

func (c *cancelling) Stat(context.Context, storage.Handle) (storage.FileInfo, error) {
	c.calls++
	c.cancel()
	return storage.FileInfo{}, errFlaky
}

// TestAmbiguousSave: a save whose first attempt stored the object but
// failed counts as done only when the object is the one being saved.
func TestAmbiguousSave(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	h := storage.Handle{Kind: storage.KindSnapshots, Name: "s"}
	st := retry.New(newFlaky(mem.New()), fast(&noSleep{}))
	if err := st.Save(ctx, h, []byte("mine")); err != nil {
		t.Fatalf("Save whose first attempt stored it: %v", err)
	}
	// Someone else's object under the name: the retried save must fail.
	base := mem.New()
	other := &racer{Mem: base, other: []byte("theirs")}
	st = retry.New(other, fast(&noSleep{}))
	if err := st.Save(ctx, h, []byte("mine")); !errors.Is(err, storage.ErrExists) {
		t.Fatalf("Save that lost the race: %v, want ErrExists", err)
	}
	if b, _ := base.Load(ctx, h, 0, -1); string(b) != "theirs" {
		t.Errorf("object %q", b)
	}
	// The same for streams, with a same-size other object.
	lb := newLocal(t)
	ls := retry.New(flakyStream{newFlaky(lb)}, fast(&noSleep{})).(storage.StreamSaver)
	data := storagetest.Content("pack", 100000)
	ph := storage.Handle{Kind: storage.KindData, Name: "ab12"}
	if err := ls.SaveStream(ctx, ph, replay(data), int64(len(data))); err != nil {
		t.Fatalf("SaveStream whose first attempt stored it: %v", err)
	}
	sr := &streamRacer{Local: newLocal(t), other: storagetest.Content("other", len(data))}
	if err := retry.New(sr, fast(&noSleep{})).(storage.StreamSaver).SaveStream(ctx, ph, replay(data), int64(len(data))); !errors.Is(err, storage.ErrExists) {
		t.Fatalf("SaveStream that lost the race: %v, want ErrExists", err)
	}
}

// replay is a source that writes the same bytes on every call, as
// storage.StreamSaver requires.
type replay []byte

func (r replay) WriteTo(w io.Writer) (int64, error) {
	n, err := w.Write(r)
	return int64(n), err
}

// racer fails the first Save after another writer stored other under its
// name; later Saves see that object.
type racer struct {
	*mem.Mem
	other []byte
	once  sync.Once
}

func (r *racer) Save(ctx context.Context, h storage.Handle, data []byte) error {
	first := false
	r.once.Do(func() { first = true; _ = r.Mem.Save(ctx, h, r.other) })
	if first {
		return errFlaky
	}
	return r.Mem.Save(ctx, h, data)
}

type streamRacer struct {
	*local.Local
	other []byte
	once  sync.Once
}

func (r *streamRacer) SaveStream(ctx context.Context, h storage.Handle, src io.WriterTo, size int64) error {
	first := false
	r.once.Do(func() { first = true; _ = r.Local.Save(ctx, h, r.other) })
	if first {
		return errFlaky
	}
	return r.Local.SaveStream(ctx, h, src, size)
}

// TestListNotRetriedAfterDelivery: a listing that fails after reporting
// objects is an error, never retried into duplicates.
func TestListNotRetriedAfterDelivery(t *testing.T) {
	t.Parallel()
	m := mem.New()
	for _, n := range []string{"a", "b", "c"} {
		if err := m.Save(context.Background(), storage.Handle{Kind: storage.KindIndex, Name: n}, nil); err != nil {
			t.Fatal(err)
		}
	}
	cl := &cutList{Mem: m}
	seen := 0
	err := retry.New(cl, fast(&noSleep{})).List(context.Background(), storage.KindIndex, func(storage.FileInfo) error { seen++; return nil })
	if !errors.Is(err, errFlaky) || cl.calls != 1 || seen != 1 {
		t.Errorf("List cut after one object: %v, %d calls, %d objects seen", err, cl.calls, seen)
	}
	// An error from fn is returned as is, never retried.
	boom := errors.New("boom")
	cl.calls = 0
	err = retry.New(cl, fast(&noSleep{})).List(context.Background(), storage.KindIndex, func(storage.FileInfo) error { return boom })
	if err != boom || cl.calls != 1 {
		t.Errorf("fn error: %v after %d calls", err, cl.calls)
	}
}

type cutList struct {
	*mem.Mem
	calls int
}

func (c *cutList) List(ctx context.Context, k storage.Kind, fn func(storage.FileInfo) error) error {
	c.calls++
	stop := errors.New("stop")
	err := c.Mem.List(ctx, k, func(fi storage.FileInfo) error {
		if err := fn(fi); err != nil {
			return err
		}
		return stop
	})
	if errors.Is(err, stop) {
		return errFlaky
	}
	return err
}
