package alert_test

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coffer-backup/coffer/internal/alert"
)

// receiver is a user's webhook endpoint: it verifies each request with its
// secret and answers 500 to the first failFirst requests.
type receiver struct {
	secret    []byte
	failFirst int32
	maxAge    time.Duration // 0: 5 minutes

	mu       sync.Mutex
	payloads []alert.Payload
	verified []error
	calls    atomic.Int32
}

func (rv *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	maxAge := rv.maxAge
	if maxAge == 0 {
		maxAge = 5 * time.Minute
	}
	err := alert.VerifyWebhook(rv.secret, r.Header.Get(alert.HeaderTimestamp), r.Header.Get(alert.HeaderSignature), body, time.Now(), maxAge)
	var p alert.Payload
	if err == nil {
		err = json.Unmarshal(body, &p)
	}
	rv.mu.Lock()
	rv.payloads = append(rv.payloads, p)
	rv.verified = append(rv.verified, err)
	rv.mu.Unlock()
	switch {
	case err != nil:
		http.Error(w, "bad signature", http.StatusUnauthorized)
	case rv.calls.Add(1) <= rv.failFirst:
		http.Error(w, "try later", http.StatusInternalServerError)
	}
}

func (rv *receiver) got() ([]alert.Payload, []error) {
	rv.mu.Lock()
	defer rv.mu.Unlock()
	return append([]alert.Payload(nil), rv.payloads...), append([]error(nil), rv.verified...)
}

// tlsReceiver serves rv over HTTPS and returns its URL and CA file.
func tlsReceiver(t *testing.T, rv *receiver) (string, string) {
	srv := httptest.NewTLSServer(rv)
	t.Cleanup(srv.Close)
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	return srv.URL + "/hooks/coffer?token=abc", ca
}

const webhookSecret = "0123456789abcdef-webhook-secret"

func webhookChannel(t *testing.T, name, url, ca, secret string) alert.Channel {
	return alert.Channel{Name: name, Kind: alert.Webhook, Webhook: &alert.WebhookConfig{
		URL: url, CAFile: ca, SecretFile: secretFile(t, secret+"\n", 0o600)}}
}

// A receiver verifies the signature; a 500 is retried with backoff and the
// retries carry the same event ID.
func TestWebhookSignedAndRetried(t *testing.T) {
	t.Parallel()
	rv := &receiver{secret: []byte(webhookSecret), failFirst: 2}
	url, ca := tlsReceiver(t, rv)
	store := newStore(t)
	var rec attempts
	d := startDispatcher(t, store, alert.Options{InitialInterval: 50 * time.Millisecond, OnAttempt: rec.record},
		webhookChannel(t, "hook", url, ca, webhookSecret))
	if _, err := d.Enqueue(context.Background(), missed); err != nil {
		t.Fatal(err)
	}
	items := waitItems(t, store, "hook", 10*time.Second, allState(alert.Delivered))
	if items[0].Attempts != 2 || !strings.Contains(items[0].LastError, "500") {
		t.Fatalf("item %+v", items[0])
	}
	payloads, verified := rv.got()
	if len(payloads) != 3 {
		t.Fatalf("%d requests, want 3", len(payloads))
	}
	for i, p := range payloads {
		if verified[i] != nil {
			t.Fatalf("request %d: %v", i, verified[i])
		}
		if p.Version != 1 || p.Channel != "hook" || len(p.Events) != 1 || p.Events[0].ID != payloads[0].Events[0].ID {
			t.Fatalf("request %d: %+v", i, p)
		}
		e := p.Events[0].Event
		if e.Kind != alert.BackupMissed || e.Client != "web1" || !e.Time.Equal(missed.Time) || e.Details["last_success"] == "" {
			t.Fatalf("request %d: event %+v", i, e)
		}
	}
	got := rec.of("hook")
	if len(got) != 3 || got[0].Err == nil || got[2].Err != nil {
		t.Fatalf("attempts %+v", got)
	}
	// The query (a token, perhaps) stays out of the stored error.
	if strings.Contains(items[0].LastError, "token=abc") {
		t.Fatalf("error shows the query: %s", items[0].LastError)
	}
}

// A sender with another secret is detected by the receiver, and so are a
// changed body, a changed timestamp and a replay after the window.
func TestWebhookWrongSecretDetected(t *testing.T) {
	t.Parallel()
	rv := &receiver{secret: []byte(webhookSecret)}
	url, ca := tlsReceiver(t, rv)
	d := startDispatcher(t, newStore(t), alert.Options{}, webhookChannel(t, "wrong", url, ca, "another-secret-of-some-length"))
	err := d.Test(context.Background(), "wrong")
	if !errors.Is(err, alert.ErrDelivery) || !strings.Contains(err.Error(), "401") {
		t.Fatalf("Test = %v, want the receiver's 401", err)
	}
	if _, verified := rv.got(); len(verified) != 1 || !errors.Is(verified[0], alert.ErrBadSignature) {
		t.Fatalf("receiver saw %v", verified)
	}

	secret := []byte(webhookSecret)
	now := time.Unix(1_800_000_000, 0)
	ts := "1800000000"
	body := []byte(`{"version":1,"channel":"x","events":[]}`)
	sig := alert.Sign(secret, ts, body)
	if err := alert.VerifyWebhook(secret, ts, sig, body, now, time.Minute); err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]struct {
		secret []byte
		ts     string
		body   []byte
		now    time.Time
		want   error
	}{
		"wrong secret":    {[]byte("x" + webhookSecret), ts, body, now, alert.ErrBadSignature},
		"body changed":    {secret, ts, append([]byte(nil), append(body[:len(body)-1:len(body)-1], ' ', '}')...), now, alert.ErrBadSignature},
		"time changed":    {secret, "1800000001", body, now, alert.ErrBadSignature},
		"replayed later":  {secret, ts, body, now.Add(2 * time.Minute), alert.ErrStale},
		"from the future": {secret, ts, body, now.Add(-2 * time.Minute), alert.ErrStale},
	} {
		if err := alert.VerifyWebhook(c.secret, c.ts, sig, c.body, c.now, time.Minute); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", name, err, c.want)
		}
	}
}

// A secret file others can read is refused before anything is sent.
func TestWebhookSecretFileMode(t *testing.T) {
	t.Parallel()
	rv := &receiver{secret: []byte(webhookSecret)}
	url, ca := tlsReceiver(t, rv)
	c := webhookChannel(t, "open", url, ca, webhookSecret)
	if err := os.Chmod(c.Webhook.SecretFile, 0o644); err != nil {
		t.Fatal(err)
	}
	short := webhookChannel(t, "short", url, ca, "tooshort")
	d := startDispatcher(t, newStore(t), alert.Options{}, c, short)
	if err := d.Test(context.Background(), "open"); !errors.Is(err, alert.ErrInsecure) || !strings.Contains(err.Error(), "0644") {
		t.Fatalf("Test = %v", err)
	}
	if err := d.Test(context.Background(), "short"); !errors.Is(err, alert.ErrInvalid) || !strings.Contains(err.Error(), "at least 16") {
		t.Fatalf("Test = %v", err)
	}
	if err := d.Test(context.Background(), "nosuch"); !errors.Is(err, alert.ErrNoChannel) {
		t.Fatalf("Test = %v", err)
	}
	if n := rv.calls.Load(); n != 0 {
		t.Fatalf("%d requests", n)
	}
}

// A digest channel collects the day's events and sends them as one
// message at its time.
func TestDigestDaily(t *testing.T) {
	t.Parallel()
	rv := &receiver{secret: []byte(webhookSecret), maxAge: 72 * time.Hour} // the test's clock is not the receiver's
	url, ca := tlsReceiver(t, rv)
	var clock atomic.Int64
	clock.Store(time.Date(2026, 12, 6, 7, 0, 0, 0, time.UTC).UnixNano())
	now := func() time.Time { return time.Unix(0, clock.Load()).UTC() }
	c := webhookChannel(t, "daily", url, ca, webhookSecret)
	c.DigestAt = "08:00"
	store := newStore(t)
	d := startDispatcher(t, store, alert.Options{Now: now}, c)
	for i, k := range []alert.Kind{alert.BackupFailed, alert.BackupMissed, alert.PruneDone} {
		e := missed
		e.Kind, e.Time = k, now().Add(time.Duration(i)*time.Minute)
		if _, err := d.Enqueue(context.Background(), e); err != nil {
			t.Fatal(err)
		}
	}
	items := waitItems(t, store, "daily", time.Second, func(it []alert.Item) bool { return len(it) == 3 })
	if want := time.Date(2026, 12, 6, 8, 0, 0, 0, time.UTC); !items[0].NextAttempt.Equal(want) {
		t.Fatalf("due %v, want %v", items[0].NextAttempt, want)
	}
	time.Sleep(300 * time.Millisecond) // several polls
	if n := rv.calls.Load(); n != 0 {
		t.Fatalf("%d requests before the digest's time", n)
	}
	clock.Store(time.Date(2026, 12, 6, 8, 0, 1, 0, time.UTC).UnixNano())
	waitItems(t, store, "daily", 5*time.Second, allState(alert.Delivered))
	payloads, _ := rv.got()
	if len(payloads) != 1 || len(payloads[0].Events) != 3 || payloads[0].Events[1].Kind != alert.BackupMissed {
		t.Fatalf("payloads %+v", payloads)
	}
}
