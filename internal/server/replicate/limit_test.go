package replicate

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func at(h, m int) time.Time { return time.Date(2026, 3, 4, h, m, 0, 0, time.UTC) }

func TestParseLimit(t *testing.T) {
	t.Parallel()
	l, err := ParseLimit("08:00-18:00=5MiB/s,*=50MiB/s")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		t    time.Time
		want int64
	}{{at(7, 59), 50 << 20}, {at(8, 0), 5 << 20}, {at(17, 59), 5 << 20}, {at(18, 0), 50 << 20}} {
		if got := l.At(c.t); got != c.want {
			t.Errorf("At(%s) = %d, want %d", c.t.Format("15:04"), got, c.want)
		}
	}
	night, err := ParseLimit("22:00-06:00=unlimited,*=1MiB/s")
	if err != nil {
		t.Fatal(err)
	}
	if night.At(at(23, 0)) != 0 || night.At(at(5, 59)) != 0 || night.At(at(6, 0)) != 1<<20 {
		t.Error("a span across midnight is not applied on both sides of it")
	}
	one, err := ParseLimit("20MiB/s")
	if err != nil || one.At(at(3, 0)) != 20<<20 || one.String() != "20MiB/s" {
		t.Errorf("ParseLimit(20MiB/s) = %v, %v", one, err)
	}
	if z, err := ParseLimit(""); err != nil || !z.IsZero() {
		t.Errorf("empty limit: %v, %v", z, err)
	}
	if z, err := ParseLimit("08:00-09:00=1M"); err != nil || z.At(at(10, 0)) != 0 {
		t.Errorf("no default rule: unlimited outside the spans; got %v, %v", z.At(at(10, 0)), err)
	}
}

func TestParseLimitRefuses(t *testing.T) {
	t.Parallel()
	for _, s := range []string{"fast", "-5M/s", "0", "08:00=5M", "08:00-08:00=5M", "25:00-26:00=1M", "8:00-9:00=1M",
		"08:00-09:00=", "*=1M,*=2M", "08:00-09:00=1M,", "08:60-09:00=1M", "24:00-01:00=1M", "*=0"} {
		if _, err := ParseLimit(s); !errors.Is(err, ErrLimit) {
			t.Errorf("ParseLimit(%q) = %v, want ErrLimit", s, err)
		}
	}
}

func FuzzParseLimit(f *testing.F) {
	for _, s := range []string{"20MiB/s", "08:00-18:00=5MiB/s,*=50MiB/s", "22:00-06:00=unlimited,*=1M", "", "*=1K"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		l, err := ParseLimit(s)
		if err != nil {
			return
		}
		again, err := ParseLimit(l.String())
		if err != nil {
			t.Fatalf("ParseLimit(%q).String() = %q does not parse: %v", s, l.String(), err)
		}
		for h := 0; h < 24; h++ {
			if r := l.At(at(h, 17)); r < 0 || r != again.At(at(h, 17)) {
				t.Fatalf("At(%02d:17) = %d, reparsed %d", h, r, again.At(at(h, 17)))
			}
		}
	})
}

// TestThrottleRate pushes bytes through a throttle for about 3 s and
// checks that the measured rate keeps to the limit (at most 10% above)
// and is not far below it (at least half: a machine under load may be
// slower than the limit, but a throttle that waits twice too long is a
// bug).
func TestThrottleRate(t *testing.T) {
	t.Parallel()
	const limit = 4 << 20
	l, err := ParseLimit("4MiB/s")
	if err != nil {
		t.Fatal(err)
	}
	th := NewThrottle(l, nil)
	var sink countingWriter
	data := make([]byte, 3*limit)
	start := time.Now()
	if _, err := (paced{ctx: context.Background(), data: data, th: th}).WriteTo(&sink); err != nil {
		t.Fatal(err)
	}
	elapsed := time.Since(start)
	rate := float64(sink.n) / elapsed.Seconds()
	t.Logf("%d bytes in %s: %.0f bytes/s against a limit of %d", sink.n, elapsed, rate, limit)
	if rate < 0.5*limit || rate > 1.1*limit {
		t.Fatalf("measured %.0f bytes/s, want between half and 110%% of %d", rate, limit)
	}
}

// TestThrottleShared: four copies at once through one Throttle keep,
// together, to the limit.
func TestThrottleShared(t *testing.T) {
	t.Parallel()
	const limit = 4 << 20
	l, err := ParseLimit("4MiB/s")
	if err != nil {
		t.Fatal(err)
	}
	th := NewThrottle(l, nil)
	var total atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var sink countingWriter
			if _, err := (paced{ctx: context.Background(), data: make([]byte, 3*limit/4), th: th}).WriteTo(&sink); err != nil {
				t.Error(err)
			}
			total.Add(sink.n)
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	rate := float64(total.Load()) / elapsed.Seconds()
	t.Logf("%d bytes by 4 writers in %s: %.0f bytes/s against a limit of %d", total.Load(), elapsed, rate, limit)
	// Above the limit is the failure this guards against (a bucket per
	// writer would give four times it); below it by more than a fifth
	// would mean the writers starve each other.
	if rate < 0.8*limit || rate > 1.1*limit {
		t.Fatalf("measured %.0f bytes/s, want at most 10%% above %d and not far below", rate, limit)
	}
}

// TestThrottleFollowsTheClock switches the limit when the clock passes a
// span's end.
func TestThrottleFollowsTheClock(t *testing.T) {
	t.Parallel()
	l, err := ParseLimit("08:00-18:00=1KiB/s,*=unlimited")
	if err != nil {
		t.Fatal(err)
	}
	now := at(18, 0)
	th := NewThrottle(l, func() time.Time { return now })
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := th.Wait(ctx, 64<<20); err != nil {
		t.Fatalf("unlimited after 18:00, yet Wait: %v", err)
	}
	now = at(12, 0)
	if err := th.Wait(ctx, 64<<10); err == nil {
		t.Fatal("64 KiB at 1 KiB/s passed within a second")
	}
}

type countingWriter struct{ n int64 }

func (w *countingWriter) Write(p []byte) (int, error) { w.n += int64(len(p)); return len(p), nil }

func TestParseKeep(t *testing.T) {
	t.Parallel()
	for s, want := range map[string]time.Duration{"30d": 720 * time.Hour, "0": 0, "1d12h": 36 * time.Hour, "90m": 90 * time.Minute} {
		if got, err := ParseKeep(s); err != nil || got != want {
			t.Errorf("ParseKeep(%q) = %v, %v; want %v", s, got, err, want)
		}
	}
	for _, s := range []string{"d", "-1d", "x", "1d-1h", "+3d"} {
		if _, err := ParseKeep(s); err == nil {
			t.Errorf("ParseKeep(%q) accepted", s)
		}
	}
}

func TestCofferRepoName(t *testing.T) {
	t.Parallel()
	if n, err := CofferRepoName(RepoKey{"web1.example.com", "home"}); err != nil || n != "web1_example_com--home" {
		t.Errorf("CofferRepoName = %q, %v", n, err)
	}
	long := RepoKey{"c", strings.Repeat("r", 62)}
	if _, err := CofferRepoName(long); err == nil {
		t.Error("a name over 64 characters accepted")
	}
}

func TestParseCofferTarget(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{"coffer://h.example:7443": "h.example:7443", "coffer://h": "h:7443", "coffer://127.0.0.1:9/": "127.0.0.1:9"} {
		if got, err := ParseCofferTarget(in); err != nil || got != want {
			t.Errorf("ParseCofferTarget(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"coffer://", "coffer://h/repo", "coffer://u@h", "coffer://h:0", "coffer://h?x", "https://h", "coffer://h:99999"} {
		if _, err := ParseCofferTarget(in); !errors.Is(err, ErrTarget) {
			t.Errorf("ParseCofferTarget(%q) = %v, want ErrTarget", in, err)
		}
	}
}

func FuzzParseKeep(f *testing.F) {
	for _, s := range []string{"30d", "0", "1d12h", "90m", "-1d", "36500d2562047h"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if d, err := ParseKeep(s); err == nil && d < 0 {
			t.Fatalf("ParseKeep(%q) = %v, negative", s, d)
		}
	})
}
