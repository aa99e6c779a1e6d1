// Package fleetclient is the client of the fleet administration API: it
// dials the server an identity directory enrolled with, over mutual TLS
// with that identity, and does JSON requests to /v1/fleet/...
//
// A refusal for lack of rights (403) is ErrForbidden, whose message is the
// server's: it names the role and the scope that fell short.
package fleetclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"
	"unicode"

	"github.com/coffer-backup/coffer/internal/pki"
	"github.com/coffer-backup/coffer/internal/pki/enroll"
	"github.com/coffer-backup/coffer/internal/tlspolicy"
	"github.com/coffer-backup/coffer/internal/wire"
)

// Sentinel errors callers branch on.
var (
	// ErrForbidden: the server refused the call for lack of rights (403).
	ErrForbidden = errors.New("refused for lack of rights")
	// ErrNotFound: no such user, group, policy or job (404).
	ErrNotFound = errors.New("not found")
	// ErrInvalid: the server refused the request as invalid (400, 409).
	ErrInvalid = errors.New("refused as invalid")
	// ErrServer: any other failure the server reported.
	ErrServer = errors.New("fleet request failed")
)

// maxAnswer bounds a response body.
const maxAnswer = 16 << 20

// Options configure Open.
type Options struct {
	// Dir is the identity directory (client.key, client.crt, ca.crt and
	// server, as coffer enroll or server init writes them).
	Dir string
	// Server overrides the identity's server file (HOST:PORT).
	Server string
	// Timeout bounds one request (default 60s).
	Timeout time.Duration
}

// Client does fleet API requests. It is safe for concurrent use.
type Client struct {
	addr string
	hc   *http.Client
	// Name is the identity's name (the certificate's CN).
	Name string
	// Expires is when the certificate in use expires; Renewed says Open
	// renewed it, RenewErr why a renewal that was due failed (the
	// certificate still valid).
	Expires  time.Time
	Renewed  bool
	RenewErr error
}

// Open loads the identity in opts.Dir and prepares a client for its
// server. A missing server file (an identity enrolled before coffer
// recorded it) is pki.ErrNoServerFile unless opts.Server is given.
//
// A certificate past two thirds of its lifetime is renewed first, as a
// host's is (enroll.RenewIfDue): a person's certificate renews like a
// host's. A failed renewal is an error only once the certificate has
// expired; before that the client goes on with it and says so in
// RenewErr.
func Open(opts Options) (*Client, error) {
	if _, err := pki.LoadIdentity(opts.Dir); err != nil {
		return nil, err
	}
	addr := opts.Server
	if addr == "" {
		var err error
		if addr, err = pki.ReadServerAddr(opts.Dir); err != nil {
			return nil, err
		}
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("server address %q: %w", addr, err)
	}
	id, renewed, rerr := enroll.RenewIfDue(context.Background(), opts.Dir, addr, enroll.Options{})
	switch {
	case id == nil:
		return nil, rerr
	case rerr != nil && time.Now().After(id.Cert.NotAfter):
		return nil, fmt.Errorf("the certificate expired at %s and could not be renewed: %w", id.Cert.NotAfter.Local().Format(time.DateTime), rerr)
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 60 * time.Second
	}
	conf := tlspolicy.Default().ClientConfig(id.TLSCertificate(), id.CAPool(), host)
	tr := &http.Transport{TLSClientConfig: conf, ForceAttemptHTTP2: true, TLSHandshakeTimeout: 15 * time.Second}
	return &Client{addr: addr, hc: &http.Client{Transport: tr, Timeout: opts.Timeout}, Name: id.Cert.Subject.CommonName,
		Expires: id.Cert.NotAfter, Renewed: renewed, RenewErr: rerr}, nil
}

// Addr is the server's HOST:PORT.
func (c *Client) Addr() string { return c.addr }

// Close releases idle connections.
func (c *Client) Close() { c.hc.CloseIdleConnections() }

// Do sends method path with in as its JSON body (nil: none) and decodes
// the answer into out (nil: ignored). Errors wrap the sentinels above and
// carry the server's message.
func (c *Client) Do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "https://"+c.addr+path, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, c.addr, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer+1))
	if err != nil {
		return fmt.Errorf("read the answer of %s: %w", c.addr, err)
	}
	if len(b) > maxAnswer {
		return fmt.Errorf("%w: answer over %d bytes", ErrServer, maxAnswer)
	}
	if resp.StatusCode/100 != 2 {
		return answerError(resp.StatusCode, b)
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("%w: answer of %s: %v", ErrServer, c.addr, err)
	}
	return nil
}

// answerError turns an error answer into an error wrapping the sentinel
// of its status, with the server's message made printable.
func answerError(status int, b []byte) error {
	var eb wire.ErrorBody
	msg := http.StatusText(status)
	if json.Unmarshal(b, &eb) == nil && eb.Message != "" {
		msg = printable(eb.Message)
	} else if t := strings.TrimSpace(string(b)); t != "" && len(t) < 512 {
		msg = printable(t)
	}
	switch status {
	case http.StatusForbidden:
		return fmt.Errorf("%w: %s", ErrForbidden, strings.TrimPrefix(msg, ErrForbidden.Error()+": "))
	case http.StatusNotFound:
		return fmt.Errorf("%w: %s", ErrNotFound, msg)
	case http.StatusBadRequest, http.StatusConflict, http.StatusRequestEntityTooLarge:
		return fmt.Errorf("%w: %s", ErrInvalid, msg)
	}
	return fmt.Errorf("%w (%d): %s", ErrServer, status, msg)
}

func printable(s string) string {
	if len(s) > 1024 {
		s = s[:1024]
	}
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return -1
		}
		return r
	}, s)
}
