package tlspolicy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"
)

// ListenerOptions tune Listen. Zero values select the defaults.
type ListenerOptions struct {
	// HelloTimeout bounds the wait for the ClientHello (default 2s): a peer
	// that connects and sends nothing is closed then and logged as a
	// timeout.
	HelloTimeout time.Duration
	// HandshakeTimeout bounds each handshake from accept to its end
	// (default 10s).
	HandshakeTimeout time.Duration
	// MaxPendingPerSource bounds the unfinished handshakes of one source
	// address (default 32). A new connection beyond it closes that
	// address's oldest one still waiting for its ClientHello (or else its
	// oldest), logged as KindOverload: a peer can crowd out only itself.
	MaxPendingPerSource int
	// MaxHandshakes bounds unfinished handshakes in all (default 4096),
	// the same way: beyond it the oldest one still waiting for its
	// ClientHello (or else the oldest) is closed. Accept never waits for a
	// slot, so idle peers cannot keep others out.
	MaxHandshakes int
	// MaxLogPerMinute bounds the refusal records written per minute
	// (default 600); the rest are counted in one "suppressed" record.
	MaxLogPerMinute int
	// Now is the clock (default time.Now).
	Now func() time.Time
}

func (o ListenerOptions) withDefaults() ListenerOptions {
	if o.HelloTimeout <= 0 {
		o.HelloTimeout = 2 * time.Second
	}
	if o.HandshakeTimeout <= 0 {
		o.HandshakeTimeout = 10 * time.Second
	}
	if o.MaxPendingPerSource <= 0 {
		o.MaxPendingPerSource = 32
	}
	if o.MaxHandshakes <= 0 {
		o.MaxHandshakes = 4096
	}
	if o.MaxLogPerMinute <= 0 {
		o.MaxLogPerMinute = 600
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

// Listen wraps inner so that Accept returns only connections that completed
// a TLS handshake with cfg (normally from ServerConfig). Refused handshakes
// are recorded in log with what the ClientHello offered, captured through
// cfg's GetConfigForClient, and classified against p. Accept returns
// *tls.Conn values, so net/http serves HTTP/2 on them.
func (p Policy) Listen(inner net.Listener, cfg *tls.Config, log RefusalLog, opts ListenerOptions) net.Listener {
	l := &listener{
		policy:  p,
		inner:   inner,
		log:     log,
		opts:    opts.withDefaults(),
		pending: make(map[net.Conn]*pendingConn),
		sources: make(map[string][]*pendingConn),
		conns:   make(chan *tls.Conn),
		done:    make(chan struct{}),
	}
	// One clone per listener: every connection shares its session ticket
	// keys, so resumption works.
	l.cfg = cfg.Clone()
	next := cfg.GetConfigForClient
	l.cfg.GetConfigForClient = func(chi *tls.ClientHelloInfo) (*tls.Config, error) {
		l.helloFrom(chi)
		if next != nil {
			return next(chi)
		}
		return nil, nil
	}
	go l.acceptLoop()
	return l
}

type listener struct {
	policy Policy
	inner  net.Listener
	cfg    *tls.Config
	log    RefusalLog
	opts   ListenerOptions

	mu         sync.Mutex
	pending    map[net.Conn]*pendingConn // unfinished handshakes
	sources    map[string][]*pendingConn // the same by source address, oldest first
	seq        uint64
	acceptErr  error
	logWindow  time.Time
	logged     int
	suppressed int

	conns     chan *tls.Conn
	done      chan struct{}
	closeOnce sync.Once
}

// pendingConn is a connection whose handshake has not finished.
type pendingConn struct {
	raw     net.Conn
	source  string
	seq     uint64 // accept order
	hello   *Hello // nil until the ClientHello arrives
	evicted bool   // closed to make room
}

func (l *listener) acceptLoop() {
	backoff := 5 * time.Millisecond
	for {
		raw, err := l.inner.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				time.Sleep(backoff)
				backoff = min(2*backoff, time.Second)
				continue
			}
			l.mu.Lock()
			l.acceptErr = err
			l.mu.Unlock()
			_ = l.Close()
			return
		}
		backoff = 5 * time.Millisecond
		// The deadline is set before the handshake starts, so a peer that
		// sends nothing holds its goroutine for HelloTimeout at most.
		_ = raw.SetDeadline(time.Now().Add(l.opts.HelloTimeout)) // a real deadline: Now may be a test clock
		for _, c := range l.admit(raw) {
			_ = c.Close()
		}
		go l.handshake(raw)
	}
}

// source is the address a peer's connections are counted under.
func source(c net.Conn) string {
	addr := c.RemoteAddr().String()
	if host, _, err := net.SplitHostPort(addr); err == nil {
		return host
	}
	return addr
}

// admit registers raw as pending and returns the connections to close to
// keep within MaxPendingPerSource and MaxHandshakes.
func (l *listener) admit(raw net.Conn) []net.Conn {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.seq++
	pc := &pendingConn{raw: raw, source: source(raw), seq: l.seq}
	l.pending[raw] = pc
	l.sources[pc.source] = append(l.sources[pc.source], pc)
	var evict []net.Conn
	if same := l.sources[pc.source]; len(same) > l.opts.MaxPendingPerSource {
		evict = append(evict, l.evictLocked(oldestWaiting(same)))
	}
	if len(l.pending) > l.opts.MaxHandshakes {
		all := make([]*pendingConn, 0, len(l.pending))
		for _, c := range l.pending {
			all = append(all, c)
		}
		evict = append(evict, l.evictLocked(oldestWaiting(all)))
	}
	return evict
}

// oldestWaiting returns the oldest of cs still waiting for its ClientHello,
// or else the oldest. cs is not empty.
func oldestWaiting(cs []*pendingConn) *pendingConn {
	var oldest, waiting *pendingConn
	for _, c := range cs {
		if oldest == nil || c.seq < oldest.seq {
			oldest = c
		}
		if c.hello == nil && (waiting == nil || c.seq < waiting.seq) {
			waiting = c
		}
	}
	if waiting != nil {
		return waiting
	}
	return oldest
}

// evictLocked marks pc evicted and forgets it; its handshake fails when the
// caller closes the returned connection.
func (l *listener) evictLocked(pc *pendingConn) net.Conn {
	pc.evicted = true
	l.forgetLocked(pc)
	return pc.raw
}

func (l *listener) forgetLocked(pc *pendingConn) {
	delete(l.pending, pc.raw)
	same := l.sources[pc.source]
	for i, c := range same {
		if c == pc {
			same = append(same[:i], same[i+1:]...)
			break
		}
	}
	if len(same) == 0 {
		delete(l.sources, pc.source)
	} else {
		l.sources[pc.source] = same
	}
}

// helloFrom records the ClientHello and lifts the hello deadline: the rest
// of the handshake is bounded by HandshakeTimeout.
func (l *listener) helloFrom(chi *tls.ClientHelloInfo) {
	l.mu.Lock()
	if pc := l.pending[chi.Conn]; pc != nil {
		pc.hello = helloFrom(chi)
	}
	l.mu.Unlock()
	_ = chi.Conn.SetDeadline(time.Time{})
}

func (l *listener) handshake(raw net.Conn) {
	conn := tls.Server(raw, l.cfg)
	ctx, cancel := context.WithTimeout(context.Background(), l.opts.HandshakeTimeout)
	err := conn.HandshakeContext(ctx)
	cancel()
	l.mu.Lock()
	var hello *Hello
	evicted := false
	if pc := l.pending[raw]; pc != nil {
		hello = pc.hello
		l.forgetLocked(pc)
	} else {
		evicted = true // only eviction forgets a connection before this
	}
	l.mu.Unlock()
	if err != nil {
		rec := l.policy.NewRefusal(l.opts.Now(), raw.RemoteAddr().String(), hello, err)
		if evicted {
			rec.Kind = KindOverload
			rec.Reason = fmt.Sprintf("closed to make room: more than %d unfinished handshakes from this address or %d in all", l.opts.MaxPendingPerSource, l.opts.MaxHandshakes)
		}
		l.refuse(rec)
		_ = conn.Close()
		return
	}
	_ = raw.SetDeadline(time.Time{})
	select {
	case l.conns <- conn:
	case <-l.done:
		_ = conn.Close()
	}
}

func (l *listener) refuse(rec RefusalRecord) {
	if l.log == nil {
		return
	}
	now := l.opts.Now()
	l.mu.Lock()
	var flush RefusalRecord
	if now.Sub(l.logWindow) >= time.Minute {
		if l.suppressed > 0 {
			flush = RefusalRecord{Time: now.UTC(), Kind: KindSuppressed, Count: l.suppressed,
				Reason: fmt.Sprintf("%d refusals not logged: more than %d a minute", l.suppressed, l.opts.MaxLogPerMinute)}
		}
		l.logWindow, l.logged, l.suppressed = now, 0, 0
	}
	if l.logged >= l.opts.MaxLogPerMinute {
		l.suppressed++
		l.mu.Unlock()
		return
	}
	l.logged++
	l.mu.Unlock()
	if flush.Count > 0 {
		_ = l.log.LogRefusal(flush)
	}
	_ = l.log.LogRefusal(rec)
}

// Accept returns the next connection whose handshake succeeded.
func (l *listener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		l.mu.Lock()
		err := l.acceptErr
		l.mu.Unlock()
		if err != nil {
			return nil, err
		}
		return nil, net.ErrClosed
	}
}

// Close stops accepting; handshakes in progress are abandoned.
func (l *listener) Close() error {
	var err error
	l.closeOnce.Do(func() {
		close(l.done)
		err = l.inner.Close()
	})
	return err
}

// Addr returns the inner listener's address.
func (l *listener) Addr() net.Addr { return l.inner.Addr() }
