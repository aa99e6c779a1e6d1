package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/coffer-backup/coffer/internal/tlspolicy"
	"github.com/coffer-backup/coffer/internal/wire"
)

// shutdownGrace bounds how long Serve waits for requests in flight.
const shutdownGrace = 30 * time.Second

// httpServer returns the net/http server of the API: HTTP/2 and HTTP/1.1,
// the configured timeouts, and connections that negotiated
// tlspolicy.EnrollmentProto handed to the enrollment endpoint alone.
func (s *Server) httpServer() *http.Server {
	protos := new(http.Protocols)
	protos.SetHTTP1(true)
	protos.SetHTTP2(true)
	return &http.Server{
		Handler:           s.logRequests(s.Handler()),
		ReadHeaderTimeout: s.cfg.ReadHeaderTimeout,
		ReadTimeout:       s.cfg.ReadTimeout,
		WriteTimeout:      s.cfg.WriteTimeout,
		IdleTimeout:       s.cfg.IdleTimeout,
		MaxHeaderBytes:    16 << 10,
		Protocols:         protos,
		HTTP2: &http.HTTP2Config{
			MaxConcurrentStreams:          max(2*s.cfg.MaxClientRequests, 16),
			MaxReceiveBufferPerConnection: 16 << 20,
			MaxReceiveBufferPerStream:     4 << 20,
		},
		ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
		TLSNextProto: map[string]func(*http.Server, *tls.Conn, http.Handler){
			tlspolicy.EnrollmentProto: s.serveEnrollConn,
		},
	}
}

// Serve serves the API on ln until ctx is done, then shuts down gracefully.
// ln must yield TLS connections whose handshake verified the client
// certificate (tlspolicy.Policy.Listen, or tls.NewListener with a config
// from tlspolicy.Policy.ServerConfig whose verify hook is VerifyConnection).
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	hs := s.httpServer()
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		s.log.Error("coffer server stopped", "reason", err)
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	s.log.Info("coffer server shutting down", "reason", context.Cause(ctx).Error(), "grace", shutdownGrace)
	sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	err := hs.Shutdown(sctx)
	if serr := <-errc; !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	return err
}

// ListenAndServe listens on addr with tlsConf and serves until ctx is done.
// It refuses a config that does not verify client certificates or allows
// less than TLS 1.2 (ErrInsecureTLS).
func (s *Server) ListenAndServe(ctx context.Context, addr string, tlsConf *tls.Config) error {
	if err := CheckTLSConfig(tlsConf); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	conf := tlsConf.Clone()
	if len(conf.NextProtos) == 0 {
		conf.NextProtos = []string{"h2", "http/1.1"}
	}
	return s.Serve(ctx, tls.NewListener(ln, conf))
}

// CheckTLSConfig refuses a server config that lets a request in without a
// verified client certificate chain, or allows a version below TLS 1.2.
func CheckTLSConfig(c *tls.Config) error {
	switch {
	case c == nil:
		return fmt.Errorf("%w: no TLS configuration", ErrInsecureTLS)
	case c.ClientAuth != tls.RequireAndVerifyClientCert && c.ClientAuth != tls.VerifyClientCertIfGiven:
		return fmt.Errorf("%w: ClientAuth is %v", ErrInsecureTLS, c.ClientAuth)
	case c.ClientCAs == nil:
		return fmt.Errorf("%w: no client CA pool", ErrInsecureTLS)
	case c.MinVersion < tls.VersionTLS12:
		return fmt.Errorf("%w: MinVersion below TLS 1.2", ErrInsecureTLS)
	case c.InsecureSkipVerify:
		return fmt.Errorf("%w: InsecureSkipVerify set", ErrInsecureTLS)
	}
	return nil
}

// serveEnrollConn serves one connection that negotiated the enrollment ALPN
// protocol: HTTP/1.1, one request, POST /v1/enroll only, short timeouts.
func (s *Server) serveEnrollConn(_ *http.Server, c *tls.Conn, _ http.Handler) {
	nc := &notifyConn{Conn: c, closed: make(chan struct{})}
	protos := new(http.Protocols)
	protos.SetHTTP1(true)
	es := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodPost && r.RequestURI == wire.EnrollPath {
				s.serveEnroll(w, r)
				return
			}
			wire.WriteError(w, fmt.Errorf("%w: enrollment connections serve %s only", wire.ErrNoRoute, wire.EnrollPath))
		}),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       5 * time.Second,
		MaxHeaderBytes:    8 << 10,
		Protocols:         protos,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	es.SetKeepAlivesEnabled(false)
	_ = es.Serve(&oneConnListener{conn: nc})
}

// notifyConn closes a channel when the connection is closed.
type notifyConn struct {
	net.Conn
	once   sync.Once
	closed chan struct{}
}

func (c *notifyConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { close(c.closed) })
	return err
}

// oneConnListener accepts one connection, then blocks until it is closed.
type oneConnListener struct {
	conn *notifyConn
	used bool
}

func (l *oneConnListener) Accept() (net.Conn, error) {
	if !l.used {
		l.used = true
		return l.conn, nil
	}
	<-l.conn.closed
	return nil, net.ErrClosed
}

func (l *oneConnListener) Close() error   { return nil }
func (l *oneConnListener) Addr() net.Addr { return l.conn.LocalAddr() }
