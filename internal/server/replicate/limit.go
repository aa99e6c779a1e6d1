package replicate

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/coffer-backup/coffer/internal/bytesize"
)

// ErrLimit is wrapped by every error of ParseLimit.
var ErrLimit = errors.New("invalid rate limit")

// LimitForms describes what ParseLimit accepts.
const LimitForms = `a rate ("20MiB/s"), "unlimited", or rules "HH:MM-HH:MM=RATE" separated by commas ` +
	`with "*=RATE" for the rest of the day (e.g. "08:00-18:00=5MiB/s,*=50MiB/s"); times are the server's local time`

// maxLimitText bounds a limit expression.
const maxLimitText = 1024

// Limit is a rate limit that may change with the time of day: the first
// rule whose span holds the local time applies, else the default. A rate
// of 0 is unlimited. The zero Limit is unlimited at all times.
type Limit struct {
	rules []limitRule
	def   int64
	text  string
}

// limitRule is a span of the day in minutes, [from, to), crossing midnight
// when to <= from, and its rate.
type limitRule struct {
	from, to int
	rate     int64
}

// ParseLimit reads a limit expression, one of LimitForms.
func ParseLimit(s string) (Limit, error) {
	t := strings.TrimSpace(s)
	if len(t) > maxLimitText {
		return Limit{}, fmt.Errorf("%w: longer than %d bytes", ErrLimit, maxLimitText)
	}
	if t == "" || t == "unlimited" {
		return Limit{}, nil
	}
	if !strings.Contains(t, "=") {
		r, err := parseRate(t)
		if err != nil {
			return Limit{}, err
		}
		return Limit{def: r, text: t}, nil
	}
	l := Limit{text: t}
	seenDefault := false
	for _, part := range strings.Split(t, ",") {
		span, rateText, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return Limit{}, fmt.Errorf("%w: %q is not SPAN=RATE; want %s", ErrLimit, part, LimitForms)
		}
		r, err := parseRate(strings.TrimSpace(rateText))
		if err != nil {
			return Limit{}, err
		}
		span = strings.TrimSpace(span)
		if span == "*" {
			if seenDefault {
				return Limit{}, fmt.Errorf("%w: more than one \"*\" rule", ErrLimit)
			}
			seenDefault, l.def = true, r
			continue
		}
		from, to, err := parseSpan(span)
		if err != nil {
			return Limit{}, err
		}
		l.rules = append(l.rules, limitRule{from: from, to: to, rate: r})
	}
	return l, nil
}

func parseRate(s string) (int64, error) {
	if s == "unlimited" {
		return 0, nil
	}
	r, err := bytesize.ParseRate(s)
	if err != nil {
		return 0, fmt.Errorf("%w: %w; want %s", ErrLimit, err, LimitForms)
	}
	return r, nil
}

// parseSpan reads "HH:MM-HH:MM"; 24:00 may end a span.
func parseSpan(s string) (from, to int, err error) {
	a, b, ok := strings.Cut(s, "-")
	if ok {
		from, err = parseClock(a, false)
	}
	if ok && err == nil {
		to, err = parseClock(b, true)
	}
	if !ok || err != nil {
		return 0, 0, fmt.Errorf("%w: %q is not a span HH:MM-HH:MM or *; want %s", ErrLimit, s, LimitForms)
	}
	if from == to%minutesDay {
		return 0, 0, fmt.Errorf("%w: span %q is empty", ErrLimit, s)
	}
	return from, to % minutesDay, nil
}

const minutesDay = 24 * 60

func parseClock(s string, allow24 bool) (int, error) {
	h, m, ok := strings.Cut(s, ":")
	if !ok || len(h) != 2 || len(m) != 2 {
		return 0, errors.New("not HH:MM")
	}
	hh, err1 := strconv.Atoi(h)
	mm, err2 := strconv.Atoi(m)
	if err1 != nil || err2 != nil || hh < 0 || mm < 0 || mm > 59 || h[0] == '+' || m[0] == '+' {
		return 0, errors.New("not HH:MM")
	}
	if hh == 24 && mm == 0 && allow24 {
		return minutesDay, nil
	}
	if hh > 23 {
		return 0, errors.New("not HH:MM")
	}
	return hh*60 + mm, nil
}

// At returns the rate in bytes a second at t (its own location's wall
// clock); 0 is unlimited.
func (l Limit) At(t time.Time) int64 {
	m := t.Hour()*60 + t.Minute()
	for _, r := range l.rules {
		if r.from < r.to && m >= r.from && m < r.to || r.from > r.to && (m >= r.from || m < r.to) {
			return r.rate
		}
	}
	return l.def
}

// IsZero reports whether l never limits.
func (l Limit) IsZero() bool { return l.def == 0 && len(l.rules) == 0 }

// String returns the expression l was parsed from ("" when unlimited).
func (l Limit) String() string { return l.text }

// Throttle paces bytes to a Limit with a token bucket
// (golang.org/x/time/rate), following the limit as the day goes on.
// It is safe for concurrent use: concurrent copies share one bucket, so
// together they keep to the limit.
type Throttle struct {
	limit Limit
	now   func() time.Time

	mu  sync.Mutex // guards lim and cur
	lim *rate.Limiter
	cur int64
}

// NewThrottle returns a Throttle for l; now is the clock (nil: time.Now).
func NewThrottle(l Limit, now func() time.Time) *Throttle {
	if now == nil {
		now = time.Now
	}
	return &Throttle{limit: l, now: now}
}

// burst is the bucket's size at rate r: a twentieth of a second's worth,
// from 4 KiB to 1 MiB, small against any window the rate is judged over.
func burst(r int64) int {
	return int(min(max(r/20, 4<<10), 1<<20))
}

// Wait blocks until n more bytes may go, or ctx is done.
func (t *Throttle) Wait(ctx context.Context, n int) error {
	for n > 0 {
		r := t.limit.At(t.now())
		if r == 0 {
			return nil
		}
		lim := t.limiter(r)
		k := min(n, burst(r))
		if err := lim.WaitN(ctx, k); err != nil {
			return err
		}
		n -= k
	}
	return nil
}

// limiter returns the token bucket, set to rate r.
func (t *Throttle) limiter(r int64) *rate.Limiter {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.lim == nil {
		t.lim = rate.NewLimiter(rate.Limit(r), burst(r))
	} else if r != t.cur {
		t.lim.SetLimit(rate.Limit(r))
		t.lim.SetBurst(burst(r))
	}
	t.cur = r
	return t.lim
}

// paced writes data through a Throttle; it is an io.WriterTo for
// storage.StreamSaver, replayable as that contract asks.
type paced struct {
	ctx  context.Context
	data []byte
	th   *Throttle
}

const pacedChunk = 32 << 10

func (p paced) WriteTo(w io.Writer) (int64, error) {
	var n int64
	for off := 0; off < len(p.data); off += pacedChunk {
		chunk := p.data[off:min(off+pacedChunk, len(p.data))]
		if p.th != nil {
			if err := p.th.Wait(p.ctx, len(chunk)); err != nil {
				return n, err
			}
		}
		k, err := w.Write(chunk)
		n += int64(k)
		if err != nil {
			return n, err
		}
	}
	return n, nil
}
