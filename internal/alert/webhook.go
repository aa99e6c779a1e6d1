package alert

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/coffer-backup/coffer/internal/termesc"
)

// Webhook request headers.
const (
	// HeaderTimestamp is the time of sending, decimal Unix seconds.
	HeaderTimestamp = "X-Coffer-Timestamp"
	// HeaderSignature is "sha256=" and the lowercase hex HMAC-SHA-256,
	// keyed with the channel's secret, of the timestamp header's value, a
	// full stop and the body: the signature covers the time, so a captured
	// request cannot be replayed later with a new timestamp.
	HeaderSignature = "X-Coffer-Signature"
)

// PayloadVersion is the webhook body's version.
const PayloadVersion = 1

// Payload is a webhook's JSON body: one event, or a digest's several.
type Payload struct {
	Version int            `json:"version"`
	Channel string         `json:"channel"`
	Events  []PayloadEvent `json:"events"`
}

// PayloadEvent is an event with its delivery ID, the same in every retry:
// a receiver that remembers the IDs it processed drops duplicates.
type PayloadEvent struct {
	ID string `json:"id"`
	Event
}

// Sign returns the X-Coffer-Signature value for body sent at timestamp
// (the X-Coffer-Timestamp value).
func Sign(secret []byte, timestamp string, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(timestamp))
	m.Write([]byte{'.'})
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// Webhook verification errors.
var (
	ErrBadSignature = errors.New("webhook signature does not verify")
	ErrStale        = errors.New("webhook timestamp outside the accepted window")
)

// VerifyWebhook checks a received webhook as a receiver should: the
// signature (in constant time) over timestamp and body, then that the
// timestamp is within maxAge of now either way (a replay of an old
// request fails). It does not parse the body.
func VerifyWebhook(secret []byte, timestamp, signature string, body []byte, now time.Time, maxAge time.Duration) error {
	if !hmac.Equal([]byte(Sign(secret, timestamp, body)), []byte(signature)) {
		return ErrBadSignature
	}
	sec, err := strconv.ParseInt(timestamp, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: %q is not Unix seconds", ErrStale, clip(timestamp, 32))
	}
	if d := now.Sub(time.Unix(sec, 0)); d > maxAge || d < -maxAge {
		return fmt.Errorf("%w: sent %s, now %s", ErrStale, time.Unix(sec, 0).UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	return nil
}

// delivery is what one attempt sends: events and their stable IDs.
type delivery struct {
	channel string
	ids     []string
	events  []Event
}

func (d delivery) payload() ([]byte, error) {
	p := Payload{Version: PayloadVersion, Channel: d.channel, Events: make([]PayloadEvent, len(d.events))}
	for i, e := range d.events {
		p.Events[i] = PayloadEvent{ID: d.ids[i], Event: e}
	}
	return json.Marshal(p)
}

// postWebhook sends the signed payload; any 2xx is delivered, anything
// else (a redirect included: it is not followed) fails.
func postWebhook(ctx context.Context, cfg *WebhookConfig, d delivery, timeout time.Duration, now time.Time) error {
	secret, err := readSecret(cfg.SecretFile, minWebhookKey)
	if err != nil {
		return err
	}
	u, err := url.Parse(cfg.URL)
	if err != nil {
		return fmt.Errorf("%w: webhook url: %v", ErrInvalid, err)
	}
	tc, err := tlsConfig(u.Hostname(), cfg.CAFile)
	if err != nil {
		return err
	}
	body, err := d.payload()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, cfg.URL, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("%w: webhook: %v", ErrInvalid, err)
	}
	ts := strconv.FormatInt(now.Unix(), 10)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "coffer")
	req.Header.Set(HeaderTimestamp, ts)
	req.Header.Set(HeaderSignature, Sign(secret, ts, body))
	tr := &http.Transport{TLSClientConfig: tc, Proxy: http.ProxyFromEnvironment, ForceAttemptHTTP2: true}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // its message repeats the URL, query and all
		}
		return fmt.Errorf("%w: webhook %s: %w", ErrDelivery, redactURL(u), err)
	}
	defer func() { _ = resp.Body.Close() }()
	text, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%w: webhook %s answered %s: %s", ErrDelivery, redactURL(u), resp.Status, termesc.Name(strings.TrimSpace(string(text))))
	}
	return nil
}

// redactURL drops the query, which may hold a token, from error messages.
func redactURL(u *url.URL) string {
	c := *u
	if c.RawQuery != "" {
		c.RawQuery = "…"
	}
	return c.String()
}
