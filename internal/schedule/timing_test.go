package schedule

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"
)

func mustWindow(t testing.TB, expr string) Window {
	t.Helper()
	w, err := ParseWindow(expr)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func TestOffset(t *testing.T) {
	t.Parallel()
	if (Timing{}).Offset("host") != 0 {
		t.Error("jitter 0 is not off")
	}
	tm := Timing{Jitter: time.Hour}
	const hosts = 2000
	seen := map[time.Duration]bool{}
	var sum time.Duration
	for i := range hosts {
		h := fmt.Sprintf("host-%d", i)
		o := tm.Offset(h)
		if o < 0 || o >= tm.Jitter || o%time.Second != 0 {
			t.Fatalf("Offset(%q) = %s, outside [0, %s) or not whole seconds", h, o, tm.Jitter)
		}
		if tm.Offset(h) != o {
			t.Fatalf("Offset(%q) is not stable", h)
		}
		seen[o] = true
		sum += o
	}
	// 2000 hosts over 3600 seconds: nearly all distinct, centred on 30 min.
	if len(seen) < hosts*3/4 {
		t.Errorf("only %d distinct offsets for %d hosts", len(seen), hosts)
	}
	if mean := sum / hosts; mean < 27*time.Minute || mean > 33*time.Minute {
		t.Errorf("mean offset %s, want about 30m", mean)
	}
	// A host keeps its place in the spread when the bound changes.
	a, b := tm.Offset("alpha"), Timing{Jitter: 2 * time.Hour}.Offset("alpha")
	if d := b - 2*a; d < -2*time.Second || d > 2*time.Second {
		t.Errorf("doubling the jitter moves alpha from %s to %s", a, b)
	}
}

func TestNextRun(t *testing.T) {
	t.Parallel()
	daily := MustParse("30 2 * * *")
	tm := Timing{Jitter: time.Hour}
	j := tm.Offset("web-1")
	run := utc(2026, 1, 1, 2, 30).Add(j)
	cases := []struct {
		name      string
		tm        Timing
		s         Schedule
		last, now time.Time
		want      time.Time
	}{
		{"after the last run", tm, daily, run, run.Add(time.Minute), utc(2026, 1, 2, 2, 30).Add(j)},
		{"never run: the next slot", tm, daily, time.Time{}, utc(2026, 1, 1, 12, 0), utc(2026, 1, 2, 2, 30).Add(j)},
		{"missed slots: once, now", tm, daily, utc(2025, 12, 1, 2, 30).Add(j), utc(2026, 1, 1, 12, 0), utc(2026, 1, 1, 12, 0)},
		{"no jitter", Timing{}, daily, utc(2026, 1, 1, 2, 30), utc(2026, 1, 1, 3, 0), utc(2026, 1, 2, 2, 30)},
		{"outside the window: its opening", Timing{Window: mustWindow(t, "22:00-06:00")}, MustParse("@hourly"),
			utc(2026, 1, 1, 5, 0), utc(2026, 1, 1, 5, 30), utc(2026, 1, 1, 22, 0)},
		{"outside the window: spread by jitter", Timing{Jitter: time.Hour, Window: mustWindow(t, "22:00-06:00")}, MustParse("@hourly"),
			utc(2026, 1, 1, 5, 0).Add(j), utc(2026, 1, 1, 5, 30), utc(2026, 1, 1, 22, 0).Add(j)},
		{"jitter longer than the window", Timing{Jitter: 7 * day, Window: mustWindow(t, "22:00-22:01")}, MustParse("@hourly"),
			utc(2026, 1, 1, 5, 0), utc(2026, 1, 1, 5, 30), utc(2026, 1, 1, 22, 0)},
		{"catch-up waits for the window", Timing{Window: mustWindow(t, "Sat-Sun")}, daily,
			utc(2025, 12, 1, 2, 30), utc(2026, 1, 1, 12, 0), utc(2026, 1, 3, 0, 0)},
		{"the zero schedule", tm, Schedule{}, run, run, time.Time{}},
	}
	for _, c := range cases {
		got := c.tm.NextRun(c.s, "web-1", c.last, c.now)
		if !got.Equal(c.want) {
			t.Errorf("%s: NextRun = %s, want %s", c.name, got, c.want)
		}
	}
	// The jitter-longer-than-window case is only meaningful if the jitter
	// would have pushed the start out of the window.
	if (Timing{Jitter: 7 * day}).Offset("web-1") < time.Minute {
		t.Error("test host's jitter too small to test the clamp")
	}
}

func TestRetry(t *testing.T) {
	t.Parallel()
	tm := Timing{Retry: Retry{Interval: time.Minute, Factor: 2, Attempts: 3}}
	for n, want := range map[int]time.Duration{1: time.Minute, 2: 2 * time.Minute, 3: 4 * time.Minute, 40: MaxRetryDelay} {
		if got := tm.RetryDelay(n); got != want {
			t.Errorf("RetryDelay(%d) = %s, want %s", n, got, want)
		}
	}
	if got := (Timing{Retry: Retry{Interval: 5 * time.Minute}}).RetryDelay(4); got != 5*time.Minute {
		t.Errorf("factor 0: RetryDelay(4) = %s, want constant 5m", got)
	}
	failed := utc(2026, 1, 1, 10, 0)
	for n, want := range map[int]time.Time{1: failed.Add(time.Minute), 3: failed.Add(4 * time.Minute)} {
		if at, ok := tm.RetryAt(failed, n); !ok || !at.Equal(want) {
			t.Errorf("RetryAt(%d) = %s, %v; want %s", n, at, ok, want)
		}
	}
	for _, n := range []int{0, 4, -1} {
		if _, ok := tm.RetryAt(failed, n); ok {
			t.Errorf("RetryAt(%d) retries; attempts are 3", n)
		}
	}
	if _, ok := (Timing{}).RetryAt(failed, 1); ok {
		t.Error("the zero Retry retries")
	}
	tm.Window = mustWindow(t, "Mon-Fri 08:00-18:00")
	// Friday 2 January 2026 17:59: the retry falls after the window shuts.
	if at, ok := tm.RetryAt(utc(2026, 1, 2, 17, 59), 1); !ok || !at.Equal(utc(2026, 1, 5, 8, 0)) {
		t.Errorf("RetryAt outside the window = %s, %v; want Monday 08:00", at, ok)
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	good := Timing{Jitter: time.Hour, Retry: Retry{Interval: time.Minute, Factor: 1.5, Attempts: 5}, Timeout: time.Hour, Grace: time.Hour}
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	if err := (Timing{}).Validate(); err != nil {
		t.Fatal(err)
	}
	for want, mutate := range map[string]func(*Timing){
		"jitter":         func(t *Timing) { t.Jitter = -time.Second },
		"jitter ":        func(t *Timing) { t.Jitter = 8 * day },
		"timeout":        func(t *Timing) { t.Timeout = -1 },
		"grace":          func(t *Timing) { t.Grace = -1 },
		"retry attempts": func(t *Timing) { t.Retry.Attempts = 101 },
		"retry backoff":  func(t *Timing) { t.Retry.Factor = 0.5 },
		"retry backoff ": func(t *Timing) { t.Retry.Factor = math.NaN() },
		"retry interval": func(t *Timing) { t.Retry.Interval = time.Millisecond },
	} {
		bad := good
		mutate(&bad)
		err := bad.Validate()
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), strings.TrimSpace(want)) {
			t.Errorf("%s: Validate = %v", want, err)
		}
	}
}

func TestMissed(t *testing.T) {
	t.Parallel()
	daily := MustParse("@daily")
	last := utc(2026, 1, 1, 0, 5)
	cases := []struct {
		name               string
		tm                 Timing
		s                  Schedule
		lastSuccess, since time.Time
		want               time.Time
	}{
		{"default grace: one cadence", Timing{}, daily, last, time.Time{}, last.Add(48 * time.Hour)},
		{"explicit grace", Timing{Grace: time.Hour}, daily, last, time.Time{}, last.Add(25 * time.Hour)},
		{"jitter lengthens the cadence", Timing{Jitter: time.Hour, Grace: time.Hour}, daily, last, time.Time{}, last.Add(26 * time.Hour)},
		{"window shut five days", Timing{Window: mustWindow(t, "Sat-Sun"), Grace: time.Hour}, daily, last, time.Time{}, last.Add(24*time.Hour + 5*day + time.Hour)},
		{"every 10s: grace at least 10s", Timing{}, MustParse("every 10s"), last, time.Time{}, last.Add(20 * time.Second)},
		{"never succeeded: from the policy", Timing{Grace: time.Hour}, daily, time.Time{}, last, last.Add(25 * time.Hour)},
		{"policy newer than the success", Timing{Grace: time.Hour}, daily, last, last.Add(time.Hour), last.Add(26 * time.Hour)},
		{"nothing to measure from", Timing{}, daily, time.Time{}, time.Time{}, time.Time{}},
		{"no schedule", Timing{}, Schedule{}, last, last, time.Time{}},
	}
	for _, c := range cases {
		at := c.tm.MissedAt(c.s, c.lastSuccess, c.since)
		if !at.Equal(c.want) {
			t.Errorf("%s: MissedAt = %s, want %s", c.name, at, c.want)
			continue
		}
		if at.IsZero() {
			if c.tm.Missed(c.s, c.lastSuccess, c.since, utc(2100, 1, 1, 0, 0)) {
				t.Errorf("%s: missed with nothing to measure from", c.name)
			}
			continue
		}
		if c.tm.Missed(c.s, c.lastSuccess, c.since, at) || !c.tm.Missed(c.s, c.lastSuccess, c.since, at.Add(time.Second)) {
			t.Errorf("%s: Missed does not turn at %s", c.name, at)
		}
	}
}
