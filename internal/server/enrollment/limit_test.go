package enrollment_test

import (
	"fmt"
	"log/slog"
	"net/netip"
	"testing"
	"time"

	"github.com/coffer-backup/coffer/internal/server/enrollment"
)

var t0 = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

func TestLimiterPerSourceAndGlobal(t *testing.T) {
	t.Parallel()
	l := enrollment.NewLimiter(enrollment.Limits{PerAddress: 1, PerAddressBurst: 3, Global: 10, GlobalBurst: 5})
	for i := range 3 {
		if ok, _ := l.Allow("192.0.2.1:1000", t0); !ok {
			t.Fatalf("attempt %d within the burst refused", i)
		}
	}
	ok, wait := l.Allow("192.0.2.1:2000", t0)
	if ok || wait <= 0 || wait > time.Second {
		t.Fatalf("attempt past the burst: %v, retry after %v", ok, wait)
	}
	// Refused attempts take nothing: a flood changes nothing for the next
	// second, and other sources keep the global burst.
	for range 100 {
		l.Allow("192.0.2.1:3000", t0)
	}
	if ok, _ := l.Allow("192.0.2.1:1000", t0.Add(time.Second)); !ok {
		t.Fatal("a refilled token refused after a flood of refused attempts")
	}
	if ok, _ := l.Allow("192.0.2.2:1000", t0.Add(time.Second)); !ok {
		t.Fatal("another source refused")
	}

	// The global ceiling holds whatever the source, and refills.
	g := enrollment.NewLimiter(enrollment.Limits{Global: 10, GlobalBurst: 5})
	for i := range 5 {
		if ok, _ := g.Allow(fmt.Sprintf("198.51.100.%d:1", i), t0); !ok {
			t.Fatalf("source %d within the global burst refused", i)
		}
	}
	ok, wait = g.Allow("198.51.100.99:1", t0)
	if ok || wait <= 0 || wait > time.Second {
		t.Fatalf("a fresh source past the global ceiling: %v %v", ok, wait)
	}
	if ok, _ := g.Allow("198.51.100.99:1", t0.Add(time.Second)); !ok {
		t.Fatal("the global bucket did not refill")
	}
}

// A spray of addresses cannot grow the limiter without bound.
func TestLimiterBoundsSources(t *testing.T) {
	t.Parallel()
	l := enrollment.NewLimiter(enrollment.Limits{MaxSources: 100, Global: 1e6, GlobalBurst: 1e6})
	for i := range 20000 {
		l.Allow(fmt.Sprintf("10.%d.%d.%d:1", i>>16, (i>>8)&255, i&255), t0.Add(time.Duration(i)*time.Millisecond))
		if n := l.Sources(); n > 100 {
			t.Fatalf("%d sources remembered after %d addresses", n, i+1)
		}
	}
	// The most recent source is remembered: its burst stays spent.
	last := "192.0.2.99:1"
	for range enrollment.DefaultPerAddressBurst {
		l.Allow(last, t0.Add(20*time.Second))
	}
	if ok, _ := l.Allow(last, t0.Add(20*time.Second)); ok {
		t.Fatal("a source's spent burst was forgotten at once")
	}
}

func TestSourceOf(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"192.0.2.1:443":               "192.0.2.1/32",
		"[::ffff:192.0.2.1]:443":      "192.0.2.1/32",
		"[2001:db8:1:2:3:4:5:6]:443":  "2001:db8:1:2::/64",
		"[2001:db8:1:2::9]:1":         "2001:db8:1:2::/64",
		"[fe80::1%eth0]:443":          "fe80::/64",
		"192.0.2.7":                   "192.0.2.7/32",
		"not an address:1":            "invalid Prefix",
		"":                            "invalid Prefix",
		"[2001:db8::1]:443:extra:bit": "invalid Prefix",
	} {
		if got := enrollment.SourceOf(in).String(); got != want {
			t.Errorf("SourceOf(%q) = %s, want %s", in, got, want)
		}
	}
	for d, want := range map[time.Duration]int{0: 1, time.Millisecond: 1, time.Second: 1, 1001 * time.Millisecond: 2, time.Hour: 3600} {
		if got := enrollment.RetryAfterSeconds(d); got != want {
			t.Errorf("RetryAfterSeconds(%v) = %d, want %d", d, got, want)
		}
	}
}

func FuzzSourceOf(f *testing.F) {
	for _, s := range []string{"192.0.2.1:443", "[2001:db8::1]:443", "[::ffff:1.2.3.4]:1", "x", "[fe80::1%25eth0]:1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p := enrollment.SourceOf(s)
		if !p.IsValid() {
			return
		}
		if p.Addr().Is4() && p.Bits() != 32 || p.Addr().Is6() && p.Bits() != 64 || p.Addr().Is4In6() {
			t.Fatalf("SourceOf(%q) = %s", s, p)
		}
		if p != p.Masked() || p.Addr().Zone() != "" {
			t.Fatalf("SourceOf(%q) = %s is not a plain prefix", s, p)
		}
		var _ netip.Prefix = p
	})
}

var discard = slog.New(slog.DiscardHandler)
