// Package retry wraps any storage.Storage so that calls failing with a
// transient error are tried again, with exponential backoff and jitter.
package retry

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"time"

	"github.com/coffer-backup/coffer/internal/storage"
)

// Options tune the retries. Zero values select the defaults.
type Options struct {
	// Attempts is how often a call is tried in all (default 5; 1 never
	// retries).
	Attempts int
	// MinBackoff and MaxBackoff bound the wait before a retry (defaults
	// 100ms and 10s): MinBackoff doubles with each retry up to MaxBackoff,
	// and a random half of it is jitter.
	MinBackoff, MaxBackoff time.Duration
	// Sleep waits d, returning ctx's error as soon as ctx is done. Nil: a
	// timer. Tests inject one that does not sleep.
	Sleep func(ctx context.Context, d time.Duration) error
	// Jitter returns a duration in [0, d]. Nil: uniformly random.
	Jitter func(d time.Duration) time.Duration
}

func (o *Options) defaults() {
	if o.Attempts <= 0 {
		o.Attempts = 5
	}
	if o.MinBackoff <= 0 {
		o.MinBackoff = 100 * time.Millisecond
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = 10 * time.Second
	}
	o.MaxBackoff = max(o.MaxBackoff, o.MinBackoff)
	if o.Sleep == nil {
		o.Sleep = sleep
	}
	if o.Jitter == nil {
		o.Jitter = func(d time.Duration) time.Duration { return rand.N(d + 1) } // #nosec G404 -- jitter, not a secret
	}
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Storage retries the calls of another storage. Errors that a retry cannot
// change are returned at once: the storage sentinels (ErrNotFound,
// ErrExists, ErrInvalidName, ErrRange, ErrNoRepository, ErrForbidden,
// ErrClosed), fs.ErrPermission and context errors. Once ctx is done, a
// transient error is returned wrapped in ctx's error, and a wait for the
// next attempt ends at once. Everything else is taken as transient.
//
// A retried call may have taken effect the first time. Save and SaveStream
// then succeed on ErrExists only if the stored object equals what was being
// saved (loaded and compared); Remove succeeds on ErrNotFound. List is
// retried only while fn has not been called.
type Storage struct {
	inner storage.Storage
	opts  Options
}

// streaming is Storage over a storage.StreamSaver.
type streaming struct {
	*Storage
	ss storage.StreamSaver
}

var (
	_ storage.Storage     = (*Storage)(nil)
	_ storage.Propertied  = (*Storage)(nil)
	_ storage.Unwrapper   = (*Storage)(nil)
	_ storage.StreamSaver = streaming{}
)

// New wraps st. The result implements storage.StreamSaver exactly when st
// does, and declares st's Properties. Closing it closes st.
func New(st storage.Storage, opts Options) storage.Storage {
	opts.defaults()
	s := &Storage{inner: st, opts: opts}
	if ss, ok := st.(storage.StreamSaver); ok {
		return streaming{Storage: s, ss: ss}
	}
	return s
}

// Unwrap implements storage.Unwrapper.
func (s *Storage) Unwrap() storage.Storage { return s.inner }

// Properties implements storage.Propertied: the wrapped storage's.
func (s *Storage) Properties() storage.Properties { return storage.PropertiesOf(s.inner) }

// Location implements storage.Storage.
func (s *Storage) Location() string { return s.inner.Location() }

// Close implements storage.Storage: it closes the wrapped storage.
func (s *Storage) Close() error { return s.inner.Close() }

// permanent reports whether another attempt cannot change err's outcome.
func permanent(err error) bool {
	for _, target := range []error{
		storage.ErrNotFound, storage.ErrExists, storage.ErrInvalidName, storage.ErrRange,
		storage.ErrNoRepository, storage.ErrForbidden, storage.ErrClosed, fs.ErrPermission,
		context.Canceled, context.DeadlineExceeded,
	} {
		if errors.Is(err, target) {
			return true
		}
	}
	var d *errDelivered
	return errors.As(err, &d)
}

// do calls op until it succeeds, fails permanently, ctx is done or the
// attempts are used up. retried reports whether an earlier attempt failed
// in a way that may have left its effect behind.
func (s *Storage) do(ctx context.Context, op func() error) (retried bool, err error) {
	for attempt := 0; ; attempt++ {
		err = op()
		if err == nil || permanent(err) {
			return retried, err
		}
		if cerr := ctx.Err(); cerr != nil {
			return retried, fmt.Errorf("%w (last attempt failed: %w)", cerr, err)
		}
		if attempt+1 >= s.opts.Attempts {
			if s.opts.Attempts == 1 {
				return retried, err
			}
			return retried, fmt.Errorf("%w (gave up after %d attempts)", err, s.opts.Attempts)
		}
		retried = true
		wait := min(s.opts.MaxBackoff, s.opts.MinBackoff<<min(attempt, 30))
		wait = wait/2 + s.opts.Jitter(wait/2)
		if serr := s.opts.Sleep(ctx, wait); serr != nil {
			return retried, fmt.Errorf("%w (while waiting to retry after: %v)", serr, err)
		}
	}
}

// Save implements storage.Storage.
func (s *Storage) Save(ctx context.Context, h storage.Handle, data []byte) error {
	retried, err := s.do(ctx, func() error { return s.inner.Save(ctx, h, data) })
	if retried && errors.Is(err, storage.ErrExists) {
		return s.stored(ctx, h, err, int64(len(data)), func(w io.Writer) error {
			_, werr := w.Write(data)
			return werr
		})
	}
	return err
}

// SaveStream implements storage.StreamSaver, replaying src on each attempt.
func (s streaming) SaveStream(ctx context.Context, h storage.Handle, src io.WriterTo, size int64) error {
	retried, err := s.do(ctx, func() error { return s.ss.SaveStream(ctx, h, src, size) })
	if retried && errors.Is(err, storage.ErrExists) {
		return s.stored(ctx, h, err, size, func(w io.Writer) error {
			_, werr := src.WriteTo(w)
			return werr
		})
	}
	return err
}

// stored decides a retried save that found h existing: nil if the object
// under h is what write produces (an earlier attempt stored it), else
// exists, the error the save got.
func (s *Storage) stored(ctx context.Context, h storage.Handle, exists error, size int64, write func(io.Writer) error) error {
	var got []byte
	_, err := s.do(ctx, func() error {
		var lerr error
		got, lerr = s.inner.Load(ctx, h, 0, -1)
		return lerr
	})
	if err != nil {
		return fmt.Errorf("%w (an earlier attempt may have stored it; loading it to compare failed: %v)", exists, err)
	}
	if int64(len(got)) != size {
		return exists
	}
	cmp := &compareWriter{want: got}
	if err := write(cmp); err != nil || cmp.differs || cmp.off != len(got) {
		return exists
	}
	return nil
}

// compareWriter checks that what is written to it equals want.
type compareWriter struct {
	want    []byte
	off     int
	differs bool
}

func (c *compareWriter) Write(p []byte) (int, error) {
	if len(p) > len(c.want)-c.off || !bytes.Equal(p, c.want[c.off:c.off+len(p)]) {
		c.differs = true
		return 0, errors.New("content differs")
	}
	c.off += len(p)
	return len(p), nil
}

// Load implements storage.Storage.
func (s *Storage) Load(ctx context.Context, h storage.Handle, offset, length int64) ([]byte, error) {
	var b []byte
	_, err := s.do(ctx, func() error {
		var lerr error
		b, lerr = s.inner.Load(ctx, h, offset, length)
		return lerr
	})
	return b, err
}

// Stat implements storage.Storage.
func (s *Storage) Stat(ctx context.Context, h storage.Handle) (storage.FileInfo, error) {
	var fi storage.FileInfo
	_, err := s.do(ctx, func() error {
		var serr error
		fi, serr = s.inner.Stat(ctx, h)
		return serr
	})
	return fi, err
}

// errDelivered marks a List that failed after calling fn: not retried.
type errDelivered struct{ err error }

func (e *errDelivered) Error() string { return e.err.Error() }
func (e *errDelivered) Unwrap() error { return e.err }

// List implements storage.Storage. An error from fn is returned as is.
func (s *Storage) List(ctx context.Context, kind storage.Kind, fn func(storage.FileInfo) error) error {
	delivered := false
	var fnErr error
	_, err := s.do(ctx, func() error {
		lerr := s.inner.List(ctx, kind, func(fi storage.FileInfo) error {
			delivered = true
			if ferr := fn(fi); ferr != nil {
				fnErr = ferr
				return ferr
			}
			return nil
		})
		if lerr != nil && (delivered || fnErr != nil) {
			return &errDelivered{lerr}
		}
		return lerr
	})
	var d *errDelivered
	if errors.As(err, &d) {
		return d.err
	}
	return err
}

// Remove implements storage.Storage.
func (s *Storage) Remove(ctx context.Context, h storage.Handle) error {
	retried, err := s.do(ctx, func() error { return s.inner.Remove(ctx, h) })
	if retried && errors.Is(err, storage.ErrNotFound) && !errors.Is(err, storage.ErrNoRepository) {
		return nil
	}
	return err
}
