// Package remote is the storage backend for a repository on a coffer
// server, coffer://HOST:PORT/REPO, spoken over mutual TLS and HTTP/2.
//
// It maps the protocol (internal/wire) onto storage.Storage: status codes
// back to the storage sentinels, transient failures retried with backoff.
package remote

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coffer-backup/coffer/internal/storage"
	"github.com/coffer-backup/coffer/internal/wire"
)

// Scheme is the URL scheme of coffer servers.
const Scheme = "coffer"

// DefaultPort is used when a coffer:// URL names no port.
const DefaultPort = "7443"

// ErrURL is wrapped by every error of ParseURL.
var ErrURL = errors.New("invalid coffer:// URL")

// ErrInsecureTLS is returned for a TLS configuration that would not pin
// the server's CA.
var ErrInsecureTLS = errors.New("TLS configuration does not pin the server's CA")

// ParseURL splits coffer://HOST[:PORT]/REPO into "HOST:PORT" (DefaultPort
// when none is given) and the repository name. Nothing else is allowed:
// no user, query, fragment, trailing slash or percent-encoding.
func ParseURL(s string) (host, repo string, err error) {
	if len(s) > 512 {
		return "", "", fmt.Errorf("%w: too long", ErrURL)
	}
	if !strings.HasPrefix(s, Scheme+"://") {
		return "", "", fmt.Errorf("%w: %q does not start with %s://", ErrURL, s, Scheme)
	}
	u, err := url.Parse(s)
	if err != nil {
		return "", "", fmt.Errorf("%w: %v", ErrURL, err)
	}
	if u.User != nil || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || u.RawFragment != "" || u.Opaque != "" || u.RawPath != "" {
		return "", "", fmt.Errorf("%w: %q: only coffer://HOST:PORT/REPO is allowed", ErrURL, s)
	}
	repo, ok := strings.CutPrefix(u.Path, "/")
	if !ok {
		return "", "", fmt.Errorf("%w: %q names no repository", ErrURL, s)
	}
	if err := wire.ValidateRepo(repo); err != nil {
		return "", "", fmt.Errorf("%w: %w", ErrURL, err)
	}
	name, port := u.Hostname(), u.Port()
	if port == "" {
		if strings.HasSuffix(u.Host, ":") {
			return "", "", fmt.Errorf("%w: empty port", ErrURL)
		}
		port = DefaultPort
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 || strconv.Itoa(n) != port {
		return "", "", fmt.Errorf("%w: port %q", ErrURL, port)
	}
	if !validHost(name) {
		return "", "", fmt.Errorf("%w: host %q", ErrURL, name)
	}
	if ip := net.ParseIP(name); ip != nil && strings.Contains(name, ":") != strings.HasPrefix(u.Host, "[") {
		return "", "", fmt.Errorf("%w: IPv6 address must be in brackets", ErrURL)
	}
	return net.JoinHostPort(name, port), repo, nil
}

// validHost accepts a DNS name (letters, digits, hyphens, dots) or an IP
// address.
func validHost(h string) bool {
	if h == "" || len(h) > 253 {
		return false
	}
	if net.ParseIP(h) != nil {
		return true
	}
	for _, label := range strings.Split(h, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}

// Options tune a Remote. Zero values select the defaults.
type Options struct {
	// Retries is how often a transiently failed request is repeated
	// (default 5; negative: never).
	Retries int
	// MinBackoff and MaxBackoff bound the wait between attempts (defaults
	// 200ms and 10s); it doubles each time, with jitter.
	MinBackoff, MaxBackoff time.Duration
	// VerifyDigest checks whole-object reads against the digest the server
	// recorded at upload. Off by default: the repository authenticates
	// everything it loads, TLS protects the transfer and the server checks
	// its own copy, so this only costs a SHA-256 pass.
	VerifyDigest bool
}

func (o *Options) defaults() {
	if o.Retries == 0 {
		o.Retries = 5
	}
	if o.Retries < 0 {
		o.Retries = 0
	}
	if o.MinBackoff <= 0 {
		o.MinBackoff = 200 * time.Millisecond
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = 10 * time.Second
	}
}

// Remote is a repository on a coffer server. It is safe for concurrent use.
type Remote struct {
	host, repo string
	base       string
	client     *http.Client
	transport  *http.Transport
	conns      *connSet
	opts       Options
	closed     atomic.Bool
}

var (
	_ storage.Storage    = (*Remote)(nil)
	_ storage.Propertied = (*Remote)(nil)
)

// Open connects to the repository at url (coffer://HOST:PORT/REPO) with
// tlsConf, which must present the client certificate and pin the server's
// CA in RootCAs. It fails with an error wrapping storage.ErrNoRepository
// when the repository or its config object does not exist.
func Open(ctx context.Context, url string, tlsConf *tls.Config) (*Remote, error) {
	return OpenWithOptions(ctx, url, tlsConf, Options{})
}

// OpenWithOptions is Open with options.
func OpenWithOptions(ctx context.Context, url string, tlsConf *tls.Config, opts Options) (*Remote, error) {
	r, err := newRemote(url, tlsConf, opts)
	if err != nil {
		return nil, err
	}
	p, _ := wire.RepoPath(r.repo)
	if _, err := r.do(ctx, http.MethodHead, p, nil, nil, nil); err != nil {
		_ = r.Close()
		return nil, fmt.Errorf("open %s: %w", r.Location(), err)
	}
	if _, err := r.Stat(ctx, storage.Handle{Kind: storage.KindConfig, Name: "config"}); err != nil {
		_ = r.Close()
		if errors.Is(err, storage.ErrNotFound) {
			return nil, fmt.Errorf("open %s: no config object: %w", r.Location(), storage.ErrNoRepository)
		}
		return nil, fmt.Errorf("open %s: %w", r.Location(), err)
	}
	return r, nil
}

// Create makes a new, empty repository at url; it fails with an error
// wrapping storage.ErrExists if the server has one of that name for this
// client. The caller then saves the config object.
func Create(ctx context.Context, url string, tlsConf *tls.Config) (*Remote, error) {
	return CreateWithOptions(ctx, url, tlsConf, Options{})
}

// CreateWithOptions is Create with options.
func CreateWithOptions(ctx context.Context, url string, tlsConf *tls.Config, opts Options) (*Remote, error) {
	r, err := newRemote(url, tlsConf, opts)
	if err != nil {
		return nil, err
	}
	p, _ := wire.RepoPath(r.repo)
	retried, err := r.do(ctx, http.MethodPost, p, nil, nil, nil)
	if errors.Is(err, storage.ErrExists) && retried {
		// An earlier attempt may have created it. An existing repository
		// without config is as good as a fresh one.
		if _, serr := r.Stat(ctx, storage.Handle{Kind: storage.KindConfig, Name: "config"}); errors.Is(serr, storage.ErrNotFound) {
			err = nil
		}
	}
	if err != nil {
		_ = r.Close()
		return nil, fmt.Errorf("create %s: %w", r.Location(), err)
	}
	return r, nil
}

func newRemote(rawURL string, tlsConf *tls.Config, opts Options) (*Remote, error) {
	host, repo, err := ParseURL(rawURL)
	if err != nil {
		return nil, err
	}
	switch {
	case tlsConf == nil:
		return nil, fmt.Errorf("%w: no TLS configuration", ErrInsecureTLS)
	case tlsConf.InsecureSkipVerify:
		return nil, fmt.Errorf("%w: InsecureSkipVerify set", ErrInsecureTLS)
	case tlsConf.RootCAs == nil:
		// A nil pool would mean the system roots: never for a coffer server.
		return nil, fmt.Errorf("%w: RootCAs is nil", ErrInsecureTLS)
	}
	conf := tlsConf.Clone()
	if conf.ServerName == "" {
		conf.ServerName, _, _ = net.SplitHostPort(host)
	}
	if len(conf.NextProtos) == 0 {
		conf.NextProtos = []string{"h2", "http/1.1"}
	}
	if conf.MinVersion < tls.VersionTLS12 {
		conf.MinVersion = tls.VersionTLS12
	}
	opts.defaults()
	conns := &connSet{
		dialer: net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second},
		open:   map[*trackedConn]struct{}{},
	}
	protos := new(http.Protocols)
	protos.SetHTTP1(true)
	protos.SetHTTP2(true)
	tr := &http.Transport{
		TLSClientConfig:       conf,
		ForceAttemptHTTP2:     true,
		Protocols:             protos,
		DialContext:           conns.dial,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: 2 * time.Minute,
		IdleConnTimeout:       90 * time.Second,
		MaxIdleConnsPerHost:   8,
		HTTP2: &http.HTTP2Config{
			MaxReceiveBufferPerConnection: 16 << 20,
			MaxReceiveBufferPerStream:     4 << 20,
			SendPingTimeout:               30 * time.Second,
			PingTimeout:                   15 * time.Second,
		},
	}
	return &Remote{
		host:      host,
		repo:      repo,
		base:      "https://" + host,
		client:    &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
		transport: tr,
		conns:     conns,
		opts:      opts,
	}, nil
}

// connSet is every connection a Remote dialed and has not closed, so that
// Close can hang them all up: an HTTP/2 connection whose last stream is
// still being torn down is not idle yet and would survive
// CloseIdleConnections.
type connSet struct {
	dialer net.Dialer
	mu     sync.Mutex
	open   map[*trackedConn]struct{}
	closed bool
}

func (s *connSet) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	c, err := s.dialer.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	tc := &trackedConn{Conn: c, set: s}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		_ = c.Close()
		return nil, storage.ErrClosed
	}
	s.open[tc] = struct{}{}
	return tc, nil
}

// closeAll closes every open connection and refuses new ones.
func (s *connSet) closeAll() {
	s.mu.Lock()
	s.closed = true
	open := s.open
	s.open = map[*trackedConn]struct{}{}
	s.mu.Unlock()
	for c := range open {
		_ = c.Conn.Close()
	}
}

type trackedConn struct {
	net.Conn
	set *connSet
}

func (c *trackedConn) Close() error {
	c.set.mu.Lock()
	delete(c.set.open, c)
	c.set.mu.Unlock()
	return c.Conn.Close()
}

// Location returns the repository's URL.
func (r *Remote) Location() string { return Scheme + "://" + r.host + "/" + r.repo }

// Properties implements storage.Propertied: every request is a round trip.
func (r *Remote) Properties() storage.Properties {
	return storage.Properties{Remote: true}
}

// Close implements storage.Storage: it closes every connection, failing
// the requests still in progress, and every call after it fails with
// storage.ErrClosed.
func (r *Remote) Close() error {
	r.closed.Store(true)
	r.transport.CloseIdleConnections()
	r.conns.closeAll()
	return nil
}

// permanent marks an error that must not be retried.
type permanent struct{ err error }

func (p *permanent) Error() string { return p.err.Error() }
func (p *permanent) Unwrap() error { return p.err }

// do sends a request, retrying transient failures, and hands a successful
// response to handle (which may be nil), whose errors are retried too
// unless wrapped in *permanent. retried reports whether an attempt before
// the last one may have reached the server.
func (r *Remote) do(ctx context.Context, method, path string, body []byte, header http.Header, handle func(*http.Response) error) (retried bool, err error) {
	for attempt := 0; ; attempt++ {
		if r.closed.Load() {
			return retried, storage.ErrClosed
		}
		if err := ctx.Err(); err != nil {
			return retried, err
		}
		var wait time.Duration
		err = r.once(ctx, method, path, body, header, handle)
		var perm *permanent
		switch {
		case err == nil:
			return retried, nil
		case ctx.Err() != nil:
			return retried, ctx.Err()
		case errors.As(err, &perm):
			return retried, perm.err
		case attempt >= r.opts.Retries:
			return retried, err
		case errors.Is(err, wire.ErrTooManyRequests), errors.Is(err, wire.ErrUnavailable), errors.Is(err, wire.ErrServer) && !errors.Is(err, wire.ErrCorrupt):
			var ra *retryAfter
			if errors.As(err, &ra) {
				wait = ra.d
			}
		case isHTTPError(err):
			return retried, err
		case !transportRetryable(err):
			return retried, err
		}
		retried = true
		backoff := min(r.opts.MaxBackoff, r.opts.MinBackoff<<min(attempt, 20))
		backoff = backoff/2 + rand.N(backoff/2+1) // #nosec G404 -- jitter, not a secret
		wait = min(max(wait, backoff), r.opts.MaxBackoff)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return retried, ctx.Err()
		case <-t.C:
		}
	}
}

// httpError is a response the server sent with an error status.
type httpError struct{ err error }

func (e *httpError) Error() string { return e.err.Error() }
func (e *httpError) Unwrap() error { return e.err }

func isHTTPError(err error) bool {
	var he *httpError
	return errors.As(err, &he)
}

// retryAfter carries a server's Retry-After.
type retryAfter struct {
	d   time.Duration
	err error
}

func (e *retryAfter) Error() string { return e.err.Error() }
func (e *retryAfter) Unwrap() error { return e.err }

func (r *Remote) once(ctx context.Context, method, path string, body []byte, header http.Header, handle func(*http.Response) error) error {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, r.base+path, rd)
	if err != nil {
		return &permanent{err}
	}
	if body != nil {
		req.ContentLength = int64(len(body))
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := r.client.Do(req)
	if err != nil {
		return err
	}
	defer func() {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		_ = resp.Body.Close()
	}()
	if resp.StatusCode >= 300 {
		err := &httpError{wire.ResponseError(resp)}
		if s := resp.Header.Get("Retry-After"); s != "" {
			if n, perr := strconv.Atoi(s); perr == nil && n >= 0 && n <= 3600 {
				return &retryAfter{d: time.Duration(n) * time.Second, err: err}
			}
		}
		return err
	}
	if handle == nil {
		return nil
	}
	return handle(resp)
}

// transportRetryable tells connection trouble, worth another attempt,
// from a refused identity, which is not.
func transportRetryable(err error) bool {
	var (
		cve     *tls.CertificateVerificationError
		unknown x509.UnknownAuthorityError
		hostErr x509.HostnameError
		invalid x509.CertificateInvalidError
		alert   tls.AlertError
		recErr  tls.RecordHeaderError
	)
	if errors.As(err, &cve) || errors.As(err, &unknown) || errors.As(err, &hostErr) || errors.As(err, &invalid) || errors.As(err, &alert) || errors.As(err, &recErr) {
		return false
	}
	// crypto/tls reports a peer's alert (our certificate refused) as an
	// unexported type whose text starts "remote error: tls:".
	return !strings.Contains(err.Error(), "remote error: tls:")
}

func validate(op string, h storage.Handle) error {
	if err := storage.ValidateHandle(h); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	return nil
}

// Save implements storage.Storage. The upload carries its SHA-256, which
// the server checks before it commits. If an attempt's outcome was lost
// and the retry finds the object existing with the same digest, Save
// succeeds: it was this Save that stored it.
func (r *Remote) Save(ctx context.Context, h storage.Handle, data []byte) error {
	if err := validate("save", h); err != nil {
		return err
	}
	p, err := wire.ObjectPath(r.repo, h)
	if err != nil {
		return fmt.Errorf("save: %w", err)
	}
	sum := sha256.Sum256(data)
	digest := hex.EncodeToString(sum[:])
	if data == nil {
		data = []byte{}
	}
	hdr := http.Header{wire.HeaderContentSHA256: {digest}, "Content-Type": {"application/octet-stream"}}
	retried, err := r.do(ctx, http.MethodPut, p, data, hdr, nil)
	if errors.Is(err, storage.ErrExists) && retried {
		if d, herr := r.headDigest(ctx, p); herr == nil && d == digest {
			return nil
		}
	}
	if err != nil {
		return fmt.Errorf("save %s: %w", h, err)
	}
	return nil
}

// Digest returns the size of h and the hex SHA-256 of its content that
// the server recorded when it stored the object ("" from a server that
// sends none); a missing object fails with storage.ErrNotFound.
func (r *Remote) Digest(ctx context.Context, h storage.Handle) (storage.FileInfo, string, error) {
	if err := validate("stat", h); err != nil {
		return storage.FileInfo{}, "", err
	}
	p, err := wire.ObjectPath(r.repo, h)
	if err != nil {
		return storage.FileInfo{}, "", fmt.Errorf("stat: %w", err)
	}
	var fi storage.FileInfo
	var d string
	_, err = r.do(ctx, http.MethodHead, p, nil, nil, func(resp *http.Response) error {
		n, err := strconv.ParseInt(resp.Header.Get("Content-Length"), 10, 64)
		if err != nil || n < 0 {
			return &permanent{fmt.Errorf("%w: stat without a valid Content-Length", wire.ErrBadRequest)}
		}
		fi, d = storage.FileInfo{Name: h.Name, Size: n}, resp.Header.Get(wire.HeaderContentSHA256)
		return nil
	})
	if err != nil {
		return storage.FileInfo{}, "", fmt.Errorf("stat %s: %w", h, err)
	}
	return fi, d, nil
}

func (r *Remote) headDigest(ctx context.Context, p string) (string, error) {
	var d string
	_, err := r.do(ctx, http.MethodHead, p, nil, nil, func(resp *http.Response) error {
		d = resp.Header.Get(wire.HeaderContentSHA256)
		return nil
	})
	return d, err
}

// Load implements storage.Storage. The response length is checked; with
// Options.VerifyDigest a whole-object read is also checked against the
// digest recorded at upload.
func (r *Remote) Load(ctx context.Context, h storage.Handle, offset, length int64) ([]byte, error) {
	if err := validate("load", h); err != nil {
		return nil, err
	}
	p, err := wire.ObjectPath(r.repo, h)
	if err != nil {
		return nil, fmt.Errorf("load: %w", err)
	}
	if offset < 0 {
		return nil, fmt.Errorf("load %s: offset %d: %w", h, offset, storage.ErrRange)
	}
	if length == 0 {
		fi, err := r.Stat(ctx, h)
		if err != nil {
			return nil, fmt.Errorf("load %s: %w", h, err)
		}
		if offset > fi.Size {
			return nil, fmt.Errorf("load %s: offset %d of %d bytes: %w", h, offset, fi.Size, storage.ErrRange)
		}
		return []byte{}, nil
	}
	rng, err := wire.FormatRange(offset, length)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", h, err)
	}
	var hdr http.Header
	if rng != "" {
		hdr = http.Header{"Range": {rng}}
	}
	var out []byte
	_, err = r.do(ctx, http.MethodGet, p, nil, hdr, func(resp *http.Response) error {
		want := resp.ContentLength
		if length > 0 {
			if want != length {
				return &permanent{fmt.Errorf("%w: server sent %d bytes for a range of %d", wire.ErrBadRequest, want, length)}
			}
		}
		if (rng == "") != (resp.StatusCode == http.StatusOK) {
			return &permanent{fmt.Errorf("%w: unexpected status %s", wire.ErrBadRequest, resp.Status)}
		}
		if want < 0 {
			return &permanent{fmt.Errorf("%w: response without a length", wire.ErrBadRequest)}
		}
		buf := make([]byte, want)
		if _, err := io.ReadFull(resp.Body, buf); err != nil {
			return fmt.Errorf("read response: %w", err)
		}
		if r.opts.VerifyDigest && offset == 0 && length < 0 {
			if d := resp.Header.Get(wire.HeaderContentSHA256); d != "" {
				sum := sha256.Sum256(buf)
				if hex.EncodeToString(sum[:]) != d {
					return &permanent{fmt.Errorf("%w: content does not match its digest", wire.ErrCorrupt)}
				}
			}
		}
		out = buf
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", h, err)
	}
	return out, nil
}

// Stat implements storage.Storage.
func (r *Remote) Stat(ctx context.Context, h storage.Handle) (storage.FileInfo, error) {
	fi, _, err := r.stat(ctx, h)
	return fi, err
}

// Received returns the time the server stored an object. Servers stamp it;
// a client cannot forge it, unlike the times inside snapshots.
func (r *Remote) Received(ctx context.Context, h storage.Handle) (time.Time, error) {
	_, t, err := r.stat(ctx, h)
	return t, err
}

func (r *Remote) stat(ctx context.Context, h storage.Handle) (storage.FileInfo, time.Time, error) {
	if err := validate("stat", h); err != nil {
		return storage.FileInfo{}, time.Time{}, err
	}
	p, err := wire.ObjectPath(r.repo, h)
	if err != nil {
		return storage.FileInfo{}, time.Time{}, fmt.Errorf("stat: %w", err)
	}
	var fi storage.FileInfo
	var received time.Time
	_, err = r.do(ctx, http.MethodHead, p, nil, nil, func(resp *http.Response) error {
		n, err := strconv.ParseInt(resp.Header.Get("Content-Length"), 10, 64)
		if err != nil || n < 0 {
			return &permanent{fmt.Errorf("%w: stat without a valid Content-Length", wire.ErrBadRequest)}
		}
		received, _ = time.Parse(time.RFC3339Nano, resp.Header.Get(wire.HeaderReceived))
		fi = storage.FileInfo{Name: h.Name, Size: n}
		return nil
	})
	if err != nil {
		return storage.FileInfo{}, time.Time{}, fmt.Errorf("stat %s: %w", h, err)
	}
	return fi, received, nil
}

// List implements storage.Storage. A listing cut short is an error, never
// a short listing; it is retried only if no object was reported yet.
func (r *Remote) List(ctx context.Context, kind storage.Kind, fn func(storage.FileInfo) error) error {
	return r.ListEntries(ctx, kind, func(e wire.Entry) error {
		return fn(storage.FileInfo{Name: e.Name, Size: e.Size})
	})
}

// ListEntries is List with the server's entries, which for snapshots carry
// the time the server received each.
func (r *Remote) ListEntries(ctx context.Context, kind storage.Kind, fn func(wire.Entry) error) error {
	p, err := wire.ListPath(r.repo, kind)
	if err != nil {
		return fmt.Errorf("list: %w", err)
	}
	delivered := false
	var fnErr error
	_, err = r.do(ctx, http.MethodGet, p, nil, nil, func(resp *http.Response) error {
		if ct := resp.Header.Get("Content-Type"); ct != wire.ListContentType {
			return &permanent{fmt.Errorf("%w: listing of type %q", wire.ErrBadRequest, ct)}
		}
		err := wire.DecodeList(resp.Body, kind, func(e wire.Entry) error {
			if err := ctx.Err(); err != nil {
				return err
			}
			delivered = true
			if err := fn(e); err != nil {
				fnErr = err
				return err
			}
			return nil
		})
		switch {
		case err == nil:
			return nil
		case fnErr != nil:
			return &permanent{fnErr}
		case delivered:
			return &permanent{err}
		}
		return err
	})
	if fnErr != nil && errors.Is(err, fnErr) {
		return err
	}
	if err != nil {
		return fmt.Errorf("list %s: %w", kind, err)
	}
	return nil
}

// Remove implements storage.Storage. If an attempt's outcome was lost and
// the retry finds the object gone, Remove succeeds.
func (r *Remote) Remove(ctx context.Context, h storage.Handle) error {
	if err := validate("remove", h); err != nil {
		return err
	}
	p, err := wire.ObjectPath(r.repo, h)
	if err != nil {
		return fmt.Errorf("remove: %w", err)
	}
	retried, err := r.do(ctx, http.MethodDelete, p, nil, nil, nil)
	if retried && errors.Is(err, storage.ErrNotFound) && !errors.Is(err, storage.ErrNoRepository) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("remove %s: %w", h, err)
	}
	return nil
}
