package agent

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/coffer-backup/coffer/internal/fleet/api"
	"github.com/coffer-backup/coffer/internal/pki/enroll"
	"github.com/coffer-backup/coffer/internal/tlspolicy"
)

// conn is the agent's HTTP client to its server: the control stream and
// the reports share its connection (HTTP/2).
type conn struct {
	a  *Agent
	mu sync.Mutex
	hc *http.Client
	tr *http.Transport
	// serial is the client certificate's serial the transport uses; a
	// renewed certificate makes a new transport.
	serial string
}

func newConn(a *Agent) *conn { return &conn{a: a} }

// client returns the HTTP client, renewing the client certificate first
// when it is due (enroll.RenewIfDue) and rebuilding the transport when the
// certificate changed.
func (c *conn) client(ctx context.Context) (*http.Client, error) {
	dir, addr := c.a.cfg.IdentityDir, c.a.id.server
	id, renewed, err := enroll.RenewIfDue(ctx, dir, addr, enroll.Options{})
	if id == nil {
		return nil, err
	}
	if err != nil {
		c.a.log.Warn("could not renew the client certificate", "err", err)
	}
	if renewed {
		c.a.log.Info("client certificate renewed", "not_after", id.Cert.NotAfter.Format(time.RFC3339))
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	serial := id.Cert.SerialNumber.String()
	if c.hc != nil && c.serial == serial {
		return c.hc, nil
	}
	if c.tr != nil {
		c.tr.CloseIdleConnections()
	}
	host, _, _ := net.SplitHostPort(addr)
	conf := tlspolicy.Default().ClientConfig(id.TLSCertificate(), id.CAPool(), host)
	c.tr, c.serial = newTransport(conf), serial
	c.hc = &http.Client{Transport: c.tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	return c.hc, nil
}

func newTransport(conf *tls.Config) *http.Transport {
	protos := new(http.Protocols)
	protos.SetHTTP1(true)
	protos.SetHTTP2(true)
	return &http.Transport{
		TLSClientConfig:       conf,
		ForceAttemptHTTP2:     true,
		Protocols:             protos,
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: 30 * time.Second,
		IdleConnTimeout:       90 * time.Second,
		HTTP2:                 &http.HTTP2Config{SendPingTimeout: 30 * time.Second, PingTimeout: 15 * time.Second},
	}
}

func (c *conn) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.tr != nil {
		c.tr.CloseIdleConnections()
	}
}

// loop holds the control stream until ctx is done, reconnecting after
// each loss with jittered exponential backoff.
func (c *conn) loop(ctx context.Context) {
	failures := 0
	for ctx.Err() == nil {
		heard, err := c.stream(ctx)
		if ctx.Err() != nil {
			return
		}
		if heard {
			failures = 0
		}
		d := backoff(failures, c.a.cfg.MinBackoff, c.a.cfg.MaxBackoff)
		failures++
		c.a.log.Warn("control stream lost; reconnecting", "err", err, "in", d.Round(time.Millisecond).String())
		select {
		case <-ctx.Done():
			return
		case <-time.After(d):
		}
	}
}

// backoff is the delay before reconnection attempt n (from 0): min·2ⁿ
// capped at max, then a random value in its upper half.
func backoff(n int, minD, maxD time.Duration) time.Duration {
	d := maxD
	if n < 30 && minD<<n < maxD {
		d = minD << n
	}
	return d/2 + rand.N(d/2+1) // #nosec G404 -- jitter, not a secret
}

// stream makes one stream request and passes its messages on until it
// ends; heard says whether any message arrived.
func (c *conn) stream(ctx context.Context) (heard bool, err error) {
	hc, err := c.client(ctx)
	if err != nil {
		return false, err
	}
	sctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	offline := c.a.cfg.OfflineAfter
	watchdog := time.AfterFunc(offline, func() { cancel(fmt.Errorf("nothing heard for %s", offline)) })
	defer watchdog.Stop()
	req, err := http.NewRequestWithContext(sctx, http.MethodGet, "https://"+c.a.id.server+api.StreamPath, nil)
	if err != nil {
		return false, err
	}
	req.Header.Set(api.HeaderAgentVersion, c.a.cfg.Version)
	req.Header.Set(api.HeaderPolicyGeneration, strconv.FormatUint(c.a.generation(), 10))
	resp, err := hc.Do(req)
	if err != nil {
		return false, causeOr(sctx, err)
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return false, fmt.Errorf("stream: %s: %s", resp.Status, bytes.TrimSpace(msg))
	}
	c.a.log.Info("control stream connected", "server", c.a.id.server)
	c.a.kick()
	br := bufio.NewReaderSize(resp.Body, api.MaxMessage+1)
	for {
		line, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			return heard, fmt.Errorf("stream: a line longer than %d bytes", api.MaxMessage)
		}
		if err != nil {
			return heard, causeOr(sctx, err)
		}
		watchdog.Reset(offline)
		m, err := api.DecodeMessage(bytes.TrimSuffix(line, []byte("\n")))
		if err != nil {
			return heard, fmt.Errorf("stream: %w", err)
		}
		heard = true
		if m.Type == api.MsgPing {
			continue
		}
		select {
		case c.a.msgs <- m:
		case <-ctx.Done():
			return heard, ctx.Err()
		}
	}
}

// causeOr returns ctx's cause when it ended (the watchdog says why), else err.
func causeOr(ctx context.Context, err error) error {
	if c := context.Cause(ctx); c != nil {
		return c
	}
	return err
}

// generation is the policy generation held (0: none). The loop sets the
// policy; the stream goroutine reads it, so it goes through an atomic.
func (a *Agent) generation() uint64 { return a.gen.Load() }

// kick wakes the report sender.
func (a *Agent) kick() {
	select {
	case a.wake <- struct{}{}:
	default:
	}
}

// deliverLoop sends queued reports, oldest first, whenever it is woken
// (a report queued, the stream connected) and, after a failure, again
// with backoff.
func (a *Agent) deliverLoop(ctx context.Context) {
	failures := 0
	var retry <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-a.wake:
		case <-retry:
		}
		retry = nil
		if err := a.deliver(ctx); err != nil {
			if ctx.Err() != nil {
				return
			}
			d := backoff(failures, a.cfg.MinBackoff, a.cfg.MaxBackoff)
			failures++
			a.log.Debug("reports not delivered", "err", err, "waiting", a.queue.Len(), "retry_in", d.String())
			retry = time.After(d)
			continue
		}
		failures = 0
	}
}

// errRefused: the server answered a report with a client error other
// than a refusal of this agent: it will never take that report.
var errRefused = errors.New("report refused")

// deliver sends every queued report; it stops at the first that the
// server did not take.
func (a *Agent) deliver(ctx context.Context) error {
	for {
		name, r, ok, err := a.queue.Peek()
		if err != nil || !ok {
			return err
		}
		err = a.post(ctx, r)
		if errors.Is(err, errRefused) {
			a.log.Error("the server refused a report; dropping it", "job", r.Job, "err", err)
		} else if err != nil {
			return err
		}
		if err := a.queue.Done(name, r.Dropped); err != nil {
			return err
		}
	}
}

func (a *Agent) post(ctx context.Context, r *api.Report) error {
	body, err := api.EncodeReport(r)
	if err != nil {
		return fmt.Errorf("%w: %w", errRefused, err)
	}
	hc, err := a.conn.client(ctx)
	if err != nil {
		return err
	}
	pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(pctx, http.MethodPost, "https://"+a.id.server+api.ReportPath, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(api.HeaderAgentVersion, a.cfg.Version)
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	switch {
	case resp.StatusCode/100 == 2:
		return nil
	case resp.StatusCode == http.StatusBadRequest || resp.StatusCode == http.StatusRequestEntityTooLarge ||
		resp.StatusCode == http.StatusUnprocessableEntity:
		return fmt.Errorf("%w: %s: %s", errRefused, resp.Status, bytes.TrimSpace(msg))
	}
	return fmt.Errorf("report: %s: %s", resp.Status, bytes.TrimSpace(msg))
}
