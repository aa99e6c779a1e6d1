package alerting

import (
	"context"
	"encoding/json"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coffer-backup/coffer/internal/alert"
	"github.com/coffer-backup/coffer/internal/fleet/api"
	"github.com/coffer-backup/coffer/internal/server/fleet/control"
	"github.com/coffer-backup/coffer/internal/serverdb"
)

func openDB(t *testing.T) *serverdb.SQLite {
	t.Helper()
	db, err := serverdb.Open(context.Background(), filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

func TestFromControl(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 12, 6, 3, 0, 0, 0, time.UTC)
	cases := []struct {
		kind, state string
		want        alert.Kind // "": no alert
	}{
		{"backup", "succeeded", alert.BackupSucceeded},
		{"backup", "warning", alert.BackupWarning},
		{"backup", "failed", alert.BackupFailed},
		{"backup", "skipped", alert.BackupSkipped},
		{"backup", "missed", alert.BackupMissed},
		{"backup", "cancelled", ""},
		{"check", "failed", alert.CheckFailed},
		{"check", "succeeded", ""},
		{"prune", "succeeded", alert.PruneDone},
		{"prune", "failed", alert.PruneDone},
		{"prune", "cancelled", ""},
		{"restore", "succeeded", alert.RestoreFinished},
		{"restore", "failed", alert.RestoreFinished},
		{"restore", "running", ""},
		{"policy", "failed", ""},
	}
	for _, c := range cases {
		e := control.Event{Time: at, Client: "web1", Job: serverdb.Job{ID: "j1", Client: "web1", Kind: c.kind, State: c.state, Repository: "main", Error: "boom"}}
		got, ok := FromControl(e)
		if ok != (c.want != "") || got.Kind != c.want {
			t.Errorf("%s %s: %q %v, want %q", c.kind, c.state, got.Kind, ok, c.want)
			continue
		}
		if !ok {
			continue
		}
		if err := got.Validate(); err != nil || got.Client != "web1" || got.JobID != "j1" || got.Details["repository"] != "main" ||
			!strings.Contains(got.Summary, "web1") || !strings.Contains(got.Summary, "boom") || !got.Time.Equal(at) {
			t.Errorf("%s %s: %+v %v", c.kind, c.state, got, err)
		}
	}
}

// blockingOut never returns until released: the Raiser must not wait.
type blockingOut struct {
	release chan struct{}
	mu      sync.Mutex
	got     []alert.Event
}

func (b *blockingOut) Enqueue(ctx context.Context, e alert.Event) (int, error) {
	select {
	case <-b.release:
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	b.mu.Lock()
	b.got = append(b.got, e)
	b.mu.Unlock()
	return 1, nil
}

func TestRaiserNeverBlocks(t *testing.T) {
	t.Parallel()
	out := &blockingOut{release: make(chan struct{})}
	r := NewRaiser(out, func(context.Context, string) (string, error) { return "prod", nil }, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Run(ctx); close(done) }()
	start := time.Now()
	for range queueSize + 100 { // more than the queue holds: the rest are dropped
		r.Control(control.Event{Time: start, Client: "web1", Job: serverdb.Job{Kind: "backup", State: "failed"}})
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("raising took %v while the outbox hangs", d)
	}
	close(out.release)
	deadline := time.Now().Add(5 * time.Second)
	for {
		out.mu.Lock()
		n := len(out.got)
		out.mu.Unlock()
		if n >= queueSize {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d events stored", n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	<-done
	out.mu.Lock()
	defer out.mu.Unlock()
	if len(out.got) > queueSize+1 || out.got[0].Kind != alert.BackupFailed || len(out.got[0].Groups) != 1 || out.got[0].Groups[0] != "prod" {
		t.Fatalf("%d stored, first %+v", len(out.got), out.got[0])
	}
}

type onlineSet map[string]bool

func TestWatchOfflineAndCertificates(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := openDB(t)
	now := time.Date(2026, 12, 6, 3, 0, 0, 0, time.UTC)
	for _, c := range []serverdb.Client{
		{Name: "web1", CertSerial: big.NewInt(1), NotAfter: now.Add(90 * 24 * time.Hour), Created: now},
		{Name: "web2", CertSerial: big.NewInt(2), NotAfter: now.Add(3 * 24 * time.Hour), Created: now},
		{Name: "web3", CertSerial: big.NewInt(3), NotAfter: now.Add(90 * 24 * time.Hour), Created: now}, // no agent ever
	} {
		if err := db.PutClient(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.AgentConnected(ctx, "web1", "1.0", now); err != nil {
		t.Fatal(err)
	}
	var raised []alert.Event
	online := onlineSet{"web1": true}
	w := &Watch{Store: db, Raise: func(e alert.Event) { raised = append(raised, e) }, Online: func(c string) bool { return online[c] },
		OfflineAfter: 45 * time.Second, CertTTL: 90 * 24 * time.Hour, Now: func() time.Time { return now }}
	check := func(want ...alert.Kind) {
		t.Helper()
		raised = nil
		if err := w.Check(ctx); err != nil {
			t.Fatal(err)
		}
		if len(raised) != len(want) {
			t.Fatalf("raised %+v, want %v", raised, want)
		}
		for i, k := range want {
			if raised[i].Kind != k || raised[i].Validate() != nil {
				t.Fatalf("raised %+v, want %v", raised, want)
			}
		}
	}
	check(alert.CertExpiring) // web2's, once
	if raised[0].Client != "web2" || !strings.Contains(raised[0].Summary, "expires") {
		t.Fatalf("%+v", raised[0])
	}
	check()
	delete(online, "web1")
	now = now.Add(30 * time.Second)
	check() // not yet
	now = now.Add(20 * time.Second)
	check(alert.AgentOffline)
	if raised[0].Client != "web1" {
		t.Fatalf("%+v", raised[0])
	}
	now = now.Add(time.Hour)
	check() // once per absence
	online["web1"] = true
	check()
	delete(online, "web1")
	now = now.Add(time.Minute)
	check(alert.AgentOffline) // a new absence
	// A renewed certificate stops the alert; one near expiry again raises it.
	if err := db.PutClient(ctx, serverdb.Client{Name: "web2", CertSerial: big.NewInt(4), NotAfter: now.Add(time.Hour), Created: now}); err != nil {
		t.Fatal(err)
	}
	check(alert.CertExpiring)
}

type fakeDispatcher struct {
	reloads int
	testErr error
}

func (f *fakeDispatcher) Reload() { f.reloads++ }
func (f *fakeDispatcher) Test(context.Context, string) error {
	return f.testErr
}

func channelJSON(t *testing.T, c alert.Channel) json.RawMessage {
	t.Helper()
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestChannelsKeepSecretsInFiles(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := openDB(t)
	disp := &fakeDispatcher{}
	dir := filepath.Join(t.TempDir(), Dir)
	chs := &Channels{Dir: dir, Store: db, Dispatcher: disp}
	hook := alert.Channel{Name: "hook", Kind: alert.Webhook, Webhook: &alert.WebhookConfig{URL: "https://hooks.example/x?token=abc"}}
	key := []byte("0123456789abcdef0123")
	got, err := chs.PutChannel(ctx, api.AlertAdd{Channel: channelJSON(t, hook), Secret: key})
	if err != nil {
		t.Fatal(err)
	}
	if got.Target != "https://hooks.example/x" || !got.HasSecret || disp.reloads != 1 {
		t.Fatalf("%+v, %d reloads", got, disp.reloads)
	}
	fi, err := os.Stat(filepath.Join(dir, "hook.secret"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("secret file: %v %v", fi, err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "hook.secret")); string(b) != string(key) {
		t.Fatalf("secret file holds %q", b)
	}
	if di, err := os.Stat(dir); err != nil || di.Mode().Perm() != 0o700 {
		t.Fatalf("alerts directory: %v %v", di, err)
	}
	stored, err := db.AlertChannels(ctx)
	if err != nil || len(stored) != 1 || stored[0].Webhook.SecretFile != filepath.Join(dir, "hook.secret") {
		t.Fatalf("stored %+v %v", stored, err)
	}

	bad := map[string]api.AlertAdd{
		"a server path from the caller": {Channel: channelJSON(t, alert.Channel{Name: "x", Kind: alert.Webhook, Webhook: &alert.WebhookConfig{URL: "https://h/", SecretFile: "/srv/coffer/policy.key"}}), Secret: key},
		"a webhook without a secret":    {Channel: channelJSON(t, alert.Channel{Name: "x", Kind: alert.Webhook, Webhook: &alert.WebhookConfig{URL: "https://h/"}})},
		"a short webhook key":           {Channel: channelJSON(t, alert.Channel{Name: "x", Kind: alert.Webhook, Webhook: &alert.WebhookConfig{URL: "https://h/"}}), Secret: []byte("short")},
		"a password without a user":     {Channel: channelJSON(t, alert.Channel{Name: "x", Kind: alert.Email, Email: &alert.EmailConfig{SMTP: "h:25", From: "a@b.c", To: []string{"d@e.f"}}}), Secret: key},
		"a user without a password":     {Channel: channelJSON(t, alert.Channel{Name: "x", Kind: alert.Email, Email: &alert.EmailConfig{SMTP: "h:25", User: "u", From: "a@b.c", To: []string{"d@e.f"}}})},
		"a CA that is not PEM":          {Channel: channelJSON(t, alert.Channel{Name: "x", Kind: alert.Email, Email: &alert.EmailConfig{SMTP: "h:25", From: "a@b.c", To: []string{"d@e.f"}}}), CA: []byte("nope")},
		"an unknown field":              {Channel: json.RawMessage(`{"name":"x","kind":"syslog","syslog":{},"extra":1}`)},
		"a bad name":                    {Channel: channelJSON(t, alert.Channel{Name: "../x", Kind: alert.Syslog, Syslog: &alert.SyslogConfig{}})},
	}
	for what, req := range bad {
		if _, err := chs.PutChannel(ctx, req); !errors.Is(err, alert.ErrInvalid) && !errors.Is(err, alert.ErrInsecure) {
			t.Errorf("%s: %v, want ErrInvalid", what, err)
		}
	}
	badCA := api.AlertAdd{Channel: channelJSON(t, hook), Secret: []byte("another-key-of-20-bytes"), CA: []byte("not PEM")}
	if _, err := chs.PutChannel(ctx, badCA); !errors.Is(err, alert.ErrInvalid) {
		t.Fatalf("replacing hook with a bad CA: %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "hook.secret")); string(b) != string(key) {
		t.Fatalf("a refused replacement changed the secret: %q", b)
	}
	if stored, _ := db.AlertChannels(ctx); len(stored) != 1 {
		t.Fatalf("refused channels were stored: %+v", stored)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("files left by refused channels: %v", entries)
	}

	list, err := chs.Channels(ctx)
	if err != nil || len(list) != 1 || list[0].Name != "hook" {
		t.Fatalf("list %+v %v", list, err)
	}
	if b, _ := json.Marshal(list); strings.Contains(string(b), "0123456789") || strings.Contains(string(b), dir) {
		t.Fatalf("list shows a secret or a path: %s", b)
	}
	if err := chs.RemoveChannel(ctx, "hook"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "hook.secret")); !os.IsNotExist(err) {
		t.Fatalf("secret file after remove: %v", err)
	}
	if err := chs.RemoveChannel(ctx, "hook"); !errors.Is(err, alert.ErrNoChannel) {
		t.Fatalf("removing it again: %v", err)
	}
}

func TestWatchReplicationLag(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := openDB(t)
	now := time.Date(2026, 12, 6, 3, 0, 0, 0, time.UTC)
	lags := map[string]time.Duration{"offsite": time.Hour, "s3": 0}
	thresholds := map[string]time.Duration{"s3": 10 * time.Minute} // its own --alert-lag
	var lagErr error
	asked := 0
	var raised []alert.Event
	w := &Watch{Store: db, Raise: func(e alert.Event) { raised = append(raised, e) }, Online: func(string) bool { return false },
		LagThreshold: 2 * time.Hour, LagInterval: 5 * time.Minute, Now: func() time.Time { return now },
		Lags: func(context.Context, time.Time) (map[string]Lag, error) {
			asked++
			out := map[string]Lag{}
			for k, v := range lags {
				out[k] = Lag{Lag: v, Threshold: thresholds[k]}
			}
			return out, lagErr
		}}
	step := func(d time.Duration, want int) {
		t.Helper()
		now = now.Add(d)
		raised = nil
		if err := w.Check(ctx); err != nil {
			t.Fatal(err)
		}
		if len(raised) != want {
			t.Fatalf("raised %+v, want %d", raised, want)
		}
	}
	step(0, 0)
	lags["offsite"] = 3 * time.Hour
	step(time.Minute, 0) // not asked again within the interval
	if asked != 1 {
		t.Fatalf("asked %d times", asked)
	}
	step(5*time.Minute, 1)
	if r := raised[0]; r.Kind != alert.ReplicationLag || r.Client != "" || r.Details["target"] != "offsite" || r.Validate() != nil {
		t.Fatalf("%+v", r)
	}
	step(5*time.Minute, 0) // once while behind
	lags["offsite"] = time.Minute
	step(5*time.Minute, 0)
	lags["offsite"] = 5 * time.Hour
	step(5*time.Minute, 1) // behind again
	// A target with its own threshold: 30 minutes behind is past its 10.
	lags["s3"] = 30 * time.Minute
	step(5*time.Minute, 1)
	if r := raised[0]; r.Details["target"] != "s3" || r.Details["threshold"] != "10m0s" {
		t.Fatalf("%+v", r)
	}
	lagErr = errors.New("objects unreadable")
	now = now.Add(10 * time.Minute)
	if err := w.Check(ctx); err == nil || !strings.Contains(err.Error(), "objects unreadable") {
		t.Fatalf("a failed lag computation: %v", err)
	}
}
