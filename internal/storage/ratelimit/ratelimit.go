// Package ratelimit wraps any storage.Storage so that the bytes it uploads
// (Save, SaveStream) and downloads (Load) flow at no more than a set rate.
package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode"

	"github.com/coffer-backup/coffer/internal/bytesize"
	"github.com/coffer-backup/coffer/internal/storage"
	"golang.org/x/time/rate"
)

// Limits are the most bytes per second each direction may move; 0 leaves
// that direction unlimited.
type Limits struct {
	Upload   int64 // Save and SaveStream
	Download int64 // Load
}

// Storage throttles the data calls of another storage. Stat, List and
// Remove pass through unthrottled: they move no object data.
//
// An upload waits for its bytes before the wrapped Save runs (SaveStream:
// as the source writes them); a download waits for its bytes after the
// wrapped Load returns them. Over any period longer than a tenth of a
// second, the bytes moved stay at the limit; a wait ends early with the
// context's error, and the call then does nothing (Save, SaveStream) or
// returns nothing (Load).
type Storage struct {
	inner    storage.Storage
	up, down *rate.Limiter // nil: unlimited
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

// New wraps st with limits l. With no limit set it returns st itself. The
// result implements storage.StreamSaver exactly when st does and declares
// st's Properties; closing it closes st. Limits apply to this wrapper: two
// wrappers of one storage each get the full rate.
func New(st storage.Storage, l Limits) storage.Storage {
	if l.Upload <= 0 && l.Download <= 0 {
		return st
	}
	s := &Storage{inner: st, up: limiter(l.Upload), down: limiter(l.Download)}
	if ss, ok := st.(storage.StreamSaver); ok {
		return streaming{Storage: s, ss: ss}
	}
	return s
}

// limiter returns a token bucket of bytesPerSec whose bucket holds a
// tenth of a second's bytes (at least 1, at most 4 MiB) and starts empty,
// so that the first bytes are paced like the rest.
func limiter(bytesPerSec int64) *rate.Limiter {
	if bytesPerSec <= 0 {
		return nil
	}
	burst := int(min(max(bytesPerSec/10, 1), 4<<20))
	l := rate.NewLimiter(rate.Limit(bytesPerSec), burst)
	l.AllowN(time.Now(), burst)
	return l
}

// wait takes n bytes from l, in pieces no larger than its bucket.
func wait(ctx context.Context, l *rate.Limiter, n int) error {
	if l == nil {
		return ctx.Err()
	}
	for n > 0 {
		k := min(n, l.Burst())
		if err := l.WaitN(ctx, k); err != nil {
			if cerr := ctx.Err(); cerr != nil {
				return cerr
			}
			// WaitN also fails when the deadline comes before the bytes could.
			return fmt.Errorf("rate limit: %w", context.DeadlineExceeded)
		}
		n -= k
	}
	return nil
}

// Unwrap implements storage.Unwrapper.
func (s *Storage) Unwrap() storage.Storage { return s.inner }

// Properties implements storage.Propertied: the wrapped storage's.
func (s *Storage) Properties() storage.Properties { return storage.PropertiesOf(s.inner) }

// Location implements storage.Storage.
func (s *Storage) Location() string { return s.inner.Location() }

// Save implements storage.Storage: it waits for len(data) bytes, then saves.
func (s *Storage) Save(ctx context.Context, h storage.Handle, data []byte) error {
	if err := storage.ValidateHandle(h); err != nil {
		return fmt.Errorf("save: %w", err)
	}
	if err := wait(ctx, s.up, len(data)); err != nil {
		return fmt.Errorf("save %s: %w", h, err)
	}
	return s.inner.Save(ctx, h, data)
}

// SaveStream implements storage.StreamSaver: src's bytes are paced as it
// writes them.
func (s streaming) SaveStream(ctx context.Context, h storage.Handle, src io.WriterTo, size int64) error {
	if s.up == nil {
		return s.ss.SaveStream(ctx, h, src, size)
	}
	return s.ss.SaveStream(ctx, h, pacedSource{ctx: ctx, src: src, l: s.up}, size)
}

// pacedSource is a source whose writes wait for the limiter first.
type pacedSource struct {
	ctx context.Context
	src io.WriterTo
	l   *rate.Limiter
}

// WriteTo implements io.WriterTo; it replays as src does.
func (p pacedSource) WriteTo(w io.Writer) (int64, error) {
	return p.src.WriteTo(pacedWriter{p: p, w: w})
}

type pacedWriter struct {
	p pacedSource
	w io.Writer
}

func (pw pacedWriter) Write(b []byte) (int, error) {
	if err := wait(pw.p.ctx, pw.p.l, len(b)); err != nil {
		return 0, err
	}
	return pw.w.Write(b)
}

// Load implements storage.Storage: the bytes are returned once the limit
// allows them.
func (s *Storage) Load(ctx context.Context, h storage.Handle, offset, length int64) ([]byte, error) {
	b, err := s.inner.Load(ctx, h, offset, length)
	if err != nil {
		return nil, err
	}
	if err := wait(ctx, s.down, len(b)); err != nil {
		return nil, fmt.Errorf("load %s: %w", h, err)
	}
	return b, nil
}

// Stat implements storage.Storage.
func (s *Storage) Stat(ctx context.Context, h storage.Handle) (storage.FileInfo, error) {
	return s.inner.Stat(ctx, h)
}

// List implements storage.Storage.
func (s *Storage) List(ctx context.Context, kind storage.Kind, fn func(storage.FileInfo) error) error {
	return s.inner.List(ctx, kind, fn)
}

// Remove implements storage.Storage.
func (s *Storage) Remove(ctx context.Context, h storage.Handle) error {
	return s.inner.Remove(ctx, h)
}

// Close implements storage.Storage: it closes the wrapped storage.
func (s *Storage) Close() error { return s.inner.Close() }

// ErrSyntax is wrapped by ParseRate's errors.
var ErrSyntax = errors.New("invalid rate")

// maxRate bounds a rate (1 TiB/s): beyond it a limit means nothing.
const maxRate = 1 << 40

// ParseRate reads a --limit-upload or --limit-download value in bytes per
// second. A plain number is KiB/s, as restic's flags of the same names
// take ("1024" is 1 MiB/s); a number with a unit is a byte size per second
// in internal/bytesize's grammar, with or without "/s" ("20MiB/s", "5M").
// "0" means unlimited. It refuses an empty or negative value, a plain
// number with a fraction ("1.5": say "1.5MiB/s" or "1536"), and rates
// above 1 TiB/s.
func ParseRate(s string) (int64, error) {
	t := strings.TrimSpace(s)
	if t != "" && strings.Trim(t, "0123456789") == "" {
		if len(t) > 12 {
			return 0, fmt.Errorf("%w: %q is too large", ErrSyntax, s)
		}
		var kib int64
		for _, c := range t {
			kib = kib*10 + int64(c-'0')
		}
		if kib > maxRate>>10 {
			return 0, fmt.Errorf("%w: %q KiB/s is too large", ErrSyntax, s)
		}
		return kib << 10, nil
	}
	if !strings.ContainsFunc(t, unicode.IsLetter) {
		return 0, fmt.Errorf("%w: %q: a plain number is whole KiB/s; or give a unit: 20MiB/s", ErrSyntax, s)
	}
	n, err := bytesize.Parse(strings.TrimSuffix(strings.TrimSuffix(t, "/s"), "/S"))
	if err != nil {
		return 0, fmt.Errorf("%w: %w (a plain number is KiB/s; or give a unit: 20MiB/s)", ErrSyntax, err)
	}
	if n > maxRate {
		return 0, fmt.Errorf("%w: %q is above 1 TiB/s", ErrSyntax, s)
	}
	return n, nil
}
