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
	// HandshakeTimeout bounds each handshake (default 10s): slow or silent
	// peers are refused and logged as timeouts.
	HandshakeTimeout time.Duration
	// MaxHandshakes bounds concurrent handshakes (default 256); beyond it,
	// new connections wait in the kernel's backlog.
	MaxHandshakes int
	// MaxLogPerMinute bounds the refusal records written per minute
	// (default 600); the rest are counted in one "suppressed" record.
	MaxLogPerMinute int
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Listen wraps inner so that Accept returns only connections that completed
// a TLS handshake with cfg (normally from ServerConfig). Refused handshakes
// are recorded in log with what the ClientHello offered, captured through
// cfg's GetConfigForClient, and classified against p. Accept returns
// *tls.Conn values, so net/http serves HTTP/2 on them.
func (p Policy) Listen(inner net.Listener, cfg *tls.Config, log RefusalLog, opts ListenerOptions) net.Listener {
	if opts.HandshakeTimeout <= 0 {
		opts.HandshakeTimeout = 10 * time.Second
	}
	if opts.MaxHandshakes <= 0 {
		opts.MaxHandshakes = 256
	}
	if opts.MaxLogPerMinute <= 0 {
		opts.MaxLogPerMinute = 600
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	l := &listener{
		policy: p,
		inner:  inner,
		log:    log,
		opts:   opts,
		hellos: make(map[net.Conn]*Hello),
		conns:  make(chan *tls.Conn),
		done:   make(chan struct{}),
		sem:    make(chan struct{}, opts.MaxHandshakes),
	}
	// One clone per listener: every connection shares its session ticket
	// keys, so resumption works.
	l.cfg = cfg.Clone()
	next := cfg.GetConfigForClient
	l.cfg.GetConfigForClient = func(chi *tls.ClientHelloInfo) (*tls.Config, error) {
		l.mu.Lock()
		l.hellos[chi.Conn] = helloFrom(chi)
		l.mu.Unlock()
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
	hellos     map[net.Conn]*Hello
	acceptErr  error
	logWindow  time.Time
	logged     int
	suppressed int

	conns     chan *tls.Conn
	done      chan struct{}
	sem       chan struct{}
	closeOnce sync.Once
}

func (l *listener) acceptLoop() {
	backoff := 5 * time.Millisecond
	for {
		select {
		case l.sem <- struct{}{}:
		case <-l.done:
			return
		}
		raw, err := l.inner.Accept()
		if err != nil {
			<-l.sem
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
		go l.handshake(raw)
	}
}

func (l *listener) handshake(raw net.Conn) {
	conn := tls.Server(raw, l.cfg)
	ctx, cancel := context.WithTimeout(context.Background(), l.opts.HandshakeTimeout)
	err := conn.HandshakeContext(ctx)
	cancel()
	l.mu.Lock()
	hello := l.hellos[raw]
	delete(l.hellos, raw)
	l.mu.Unlock()
	<-l.sem
	if err != nil {
		l.refuse(raw.RemoteAddr().String(), hello, err)
		_ = conn.Close()
		return
	}
	select {
	case l.conns <- conn:
	case <-l.done:
		_ = conn.Close()
	}
}

func (l *listener) refuse(peer string, hello *Hello, err error) {
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
	_ = l.log.LogRefusal(l.policy.NewRefusal(now, peer, hello, err))
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
