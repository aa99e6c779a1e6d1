package enrollment

import (
	"math"
	"net"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Defaults of Limits' zero fields.
const (
	// DefaultPerAddress is the steady rate of attempts one source may make:
	// one a second, after a burst of DefaultPerAddressBurst.
	DefaultPerAddress      = rate.Limit(1)
	DefaultPerAddressBurst = 10
	// DefaultGlobal is the ceiling for the whole server, whatever the
	// sources: ten a second after a burst of DefaultGlobalBurst.
	DefaultGlobal      = rate.Limit(10)
	DefaultGlobalBurst = 50
	// DefaultMaxSources bounds the sources remembered at once.
	DefaultMaxSources = 10000
)

// Limits configure a Limiter. Zero values select the defaults above.
type Limits struct {
	PerAddress      rate.Limit
	PerAddressBurst int
	Global          rate.Limit
	GlobalBurst     int
	// MaxSources bounds the per-source buckets kept; beyond it the least
	// recently seen source is forgotten (it starts again with a full burst).
	MaxSources int
}

// Limiter decides whether an enrollment attempt may go ahead: each source
// (an IPv4 address, or an IPv6 /64, what one host can easily change
// within) has its own token bucket, and all of them share a global one, so
// one source flooding the endpoint slows only itself, and many together
// cannot make the server sign or log without bound. A refused attempt uses
// no token of either bucket. It is safe for concurrent use.
type Limiter struct {
	lim    Limits
	mu     sync.Mutex
	global *rate.Limiter
	src    map[netip.Prefix]*source
}

type source struct {
	lim  *rate.Limiter
	seen time.Time
}

// NewLimiter returns a Limiter with limits l (zero fields: the defaults).
func NewLimiter(l Limits) *Limiter {
	if l.PerAddress <= 0 {
		l.PerAddress = DefaultPerAddress
	}
	if l.PerAddressBurst <= 0 {
		l.PerAddressBurst = DefaultPerAddressBurst
	}
	if l.Global <= 0 {
		l.Global = DefaultGlobal
	}
	if l.GlobalBurst <= 0 {
		l.GlobalBurst = DefaultGlobalBurst
	}
	if l.MaxSources <= 0 {
		l.MaxSources = DefaultMaxSources
	}
	return &Limiter{lim: l, global: rate.NewLimiter(l.Global, l.GlobalBurst), src: map[netip.Prefix]*source{}}
}

// Allow takes a token for an attempt from remoteAddr (host:port, as in
// http.Request.RemoteAddr) at now. When it refuses, retryAfter is how long
// until an attempt from that source would be allowed.
func (l *Limiter) Allow(remoteAddr string, now time.Time) (ok bool, retryAfter time.Duration) {
	key := SourceOf(remoteAddr)
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.src[key]
	if s == nil {
		if len(l.src) >= l.lim.MaxSources {
			l.forget(now)
		}
		s = &source{lim: rate.NewLimiter(l.lim.PerAddress, l.lim.PerAddressBurst)}
		l.src[key] = s
	}
	s.seen = now
	own := s.lim.ReserveN(now, 1)
	if d := own.DelayFrom(now); d > 0 {
		own.CancelAt(now)
		return false, d
	}
	all := l.global.ReserveN(now, 1)
	if d := all.DelayFrom(now); d > 0 {
		all.CancelAt(now)
		own.CancelAt(now)
		return false, d
	}
	return true, 0
}

// Sources is the number of sources remembered now.
func (l *Limiter) Sources() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.src)
}

// forget drops every source whose bucket has refilled (it is as good as
// new), or else the least recently seen one; l.mu is held.
func (l *Limiter) forget(now time.Time) {
	refill := time.Duration(float64(l.lim.PerAddressBurst) / float64(l.lim.PerAddress) * float64(time.Second))
	var oldest netip.Prefix
	oldestSeen := time.Time{}
	dropped := false
	for k, s := range l.src {
		if now.Sub(s.seen) >= refill {
			delete(l.src, k)
			dropped = true
			continue
		}
		if oldestSeen.IsZero() || s.seen.Before(oldestSeen) {
			oldest, oldestSeen = k, s.seen
		}
	}
	if !dropped {
		delete(l.src, oldest)
	}
}

// SourceOf is the source a remote address is limited as: its IPv4 address,
// or the /64 of its IPv6 address. An address that does not parse is one
// source of its own kind (the zero prefix).
func SourceOf(remoteAddr string) netip.Prefix {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		host = remoteAddr
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Prefix{}
	}
	a = a.Unmap().WithZone("")
	bits := 32
	if a.Is6() {
		bits = 64
	}
	p, err := a.Prefix(bits)
	if err != nil {
		return netip.Prefix{}
	}
	return p
}

// RetryAfterSeconds is a Retry-After value for d: whole seconds, at least 1.
func RetryAfterSeconds(d time.Duration) int {
	return max(1, int(math.Ceil(d.Seconds())))
}
