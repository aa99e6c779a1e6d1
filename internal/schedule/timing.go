package schedule

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math"
	"math/bits"
	"time"
)

// Limits Timing.Validate enforces.
const (
	MaxJitter        = 7 * day
	MaxRetryAttempts = 100
	MinRetryInterval = time.Second
	MaxRetryFactor   = 100
	// MaxRetryDelay caps the delay a growing backoff reaches.
	MaxRetryDelay = 7 * day
	// MinGrace is the least grace a missed-run check allows.
	MinGrace = 10 * time.Second
)

// Timing is the part of a job's policy that says when it may start besides
// its schedule, how it is retried and when it counts as missed. The zero
// Timing has no jitter, no window, no retries, no timeout and the default
// grace.
type Timing struct {
	// Jitter is the upper bound of a delay added to every scheduled start,
	// derived from the host (see Offset) so that a fleet spreads out while
	// each host keeps its own steady time. 0 turns jitter off.
	Jitter time.Duration
	// Window is when a job may start; a start that falls outside moves to
	// the window's next opening. The zero Window is always open.
	Window Window
	// Retry says when a failed job is tried again; the zero Retry never
	// retries.
	Retry Retry
	// Timeout is how long a job may run before it is stopped; 0 is no limit.
	Timeout time.Duration
	// Grace is how long past its cadence a host may go without a successful
	// run before it counts as missed; 0 means one cadence, at least MinGrace.
	Grace time.Duration
}

// Retry is a backoff: the first retry Interval after a failure, each
// further one Factor times the delay before it, at most Attempts retries.
type Retry struct {
	// Interval is the delay from a failure to the first retry.
	Interval time.Duration
	// Factor multiplies the delay for each further retry; 0 and 1 keep it
	// constant. Delays stop growing at MaxRetryDelay.
	Factor float64
	// Attempts is how many retries follow a failed run, so a job runs at
	// most 1+Attempts times for one scheduled start; 0 never retries.
	Attempts int
}

// Validate reports the first field out of range, naming it.
func (t Timing) Validate() error {
	r := t.Retry
	switch {
	case t.Jitter < 0 || t.Jitter > MaxJitter:
		return fmt.Errorf("%w jitter %s: must be between 0 and %s", ErrInvalid, t.Jitter, MaxJitter)
	case t.Timeout < 0:
		return fmt.Errorf("%w timeout %s: must not be negative (0 is no limit)", ErrInvalid, t.Timeout)
	case t.Grace < 0:
		return fmt.Errorf("%w grace %s: must not be negative (0 is one interval)", ErrInvalid, t.Grace)
	case r.Attempts < 0 || r.Attempts > MaxRetryAttempts:
		return fmt.Errorf("%w retry attempts %d: must be between 0 and %d", ErrInvalid, r.Attempts, MaxRetryAttempts)
	case math.IsNaN(r.Factor) || r.Factor != 0 && (r.Factor < 1 || r.Factor > MaxRetryFactor):
		return fmt.Errorf("%w retry backoff factor %v: must be between 1 and %d (0 is 1)", ErrInvalid, r.Factor, MaxRetryFactor)
	case r.Attempts > 0 && (r.Interval < MinRetryInterval || r.Interval > MaxRetryDelay):
		return fmt.Errorf("%w retry interval %s: must be between %s and %s", ErrInvalid, r.Interval, MinRetryInterval, MaxRetryDelay)
	}
	return nil
}

// In returns the timing with its window in loc, the host's time zone.
func (t Timing) In(loc *time.Location) Timing {
	t.Window = t.Window.In(loc)
	return t
}

// jitterDomain separates the jitter hash from any other use of host names.
const jitterDomain = "coffer schedule jitter v1\x00"

// Offset returns host's jitter: a delay in [0, Jitter), whole seconds,
// the same every time for the same host and bound, spread evenly across
// hosts. host is any stable name of the host, such as its client name.
func (t Timing) Offset(host string) time.Duration {
	if t.Jitter <= 0 {
		return 0
	}
	sum := sha256.Sum256([]byte(jitterDomain + host))
	hi, _ := bits.Mul64(binary.BigEndian.Uint64(sum[:8]), uint64(t.Jitter))
	return time.Duration(hi).Truncate(time.Second) // #nosec G115 -- hi < Jitter, an int64
}

// NextRun returns when host next starts a job of schedule s, given when it
// last started one (the zero time if never) and the time now. It is the
// first run of s shifted by host's jitter that is after last; if that is
// already past (the host was down), now, so the missed runs are made up
// for by one; and if that is outside the window, the window's next
// opening, shifted by the jitter if the window is still open then. The zero
// Schedule gives the zero time.
func (t Timing) NextRun(s Schedule, host string, last, now time.Time) time.Time {
	if s.IsZero() {
		return time.Time{}
	}
	from := last
	if from.IsZero() {
		from = now
	}
	j := t.Offset(host)
	next := s.Next(from.Add(-j))
	if next.IsZero() {
		return next
	}
	next = next.Add(j)
	if next.Before(now) {
		next = now
	}
	return t.startIn(next, j)
}

// startIn moves at into the window, spreading the hosts that wait for an
// opening by their jitter j.
func (t Timing) startIn(at time.Time, j time.Duration) time.Time {
	from, until := t.Window.Open(at)
	if from.Equal(at) || from.IsZero() {
		return from
	}
	if spread := from.Add(j); spread.Before(until) {
		return spread
	}
	return from
}

// InWindow reports whether a job may start at at.
func (t Timing) InWindow(at time.Time) bool { return t.Window.Contains(at) }

// RetryDelay returns the delay before the retry that follows the
// failures-th consecutive failure (1 for the first run's failure).
func (t Timing) RetryDelay(failures int) time.Duration {
	f := t.Retry.Factor
	if f == 0 {
		f = 1
	}
	d := float64(t.Retry.Interval) * math.Pow(f, float64(max(failures, 1)-1))
	if math.IsNaN(d) || d >= float64(MaxRetryDelay) {
		return MaxRetryDelay
	}
	return time.Duration(d)
}

// RetryAt returns when to retry a job whose failures-th consecutive
// failure happened at failedAt, moved into the window; ok is false when
// the attempts are used up.
func (t Timing) RetryAt(failedAt time.Time, failures int) (at time.Time, ok bool) {
	if failures < 1 || failures > t.Retry.Attempts {
		return time.Time{}, false
	}
	return t.startIn(failedAt.Add(t.RetryDelay(failures)), 0), true
}

// Cadence returns the longest time a host following s and t may go between
// two starts, or from when the policy took effect to its first start: the
// schedule's Interval, plus the jitter, plus the longest time the window
// stays shut when there is one.
func (t Timing) Cadence(s Schedule) time.Duration {
	c := s.Interval() + t.Jitter
	if !t.Window.IsZero() {
		c += t.Window.MaxClosed()
	}
	return c
}

// grace returns the grace period in force for s.
func (t Timing) grace(s Schedule) time.Duration {
	if t.Grace > 0 {
		return t.Grace
	}
	return max(t.Cadence(s), MinGrace)
}

// MissedAt returns when a host following s and t counts as missed unless
// it succeeds first: Cadence plus the grace after the later of its last
// success and since, when its policy took effect (either may be zero). It
// is the zero time when both are zero, or for the zero Schedule.
func (t Timing) MissedAt(s Schedule, lastSuccess, since time.Time) time.Time {
	ref := lastSuccess
	if since.After(ref) {
		ref = since
	}
	if ref.IsZero() || s.IsZero() {
		return time.Time{}
	}
	return ref.Add(t.Cadence(s) + t.grace(s))
}

// Missed reports whether a host following s and t is overdue at now: no
// success within Cadence plus the grace (see MissedAt).
func (t Timing) Missed(s Schedule, lastSuccess, since, now time.Time) bool {
	at := t.MissedAt(s, lastSuccess, since)
	return !at.IsZero() && now.After(at)
}
