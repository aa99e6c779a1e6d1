package enroll_test

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coffer-backup/coffer/internal/pki/enroll"
	"github.com/coffer-backup/coffer/internal/server"
	"github.com/coffer-backup/coffer/internal/server/enrollment"
	"github.com/coffer-backup/coffer/internal/server/servertest"
	"golang.org/x/time/rate"
)

// startLimited runs a real enrolling server with tight enrollment limits.
func startLimited(t *testing.T, limits enrollment.Limits) *servertest.Env {
	t.Helper()
	enr := &enrollment.Enroller{ClientTTL: time.Hour, Logger: slog.New(slog.DiscardHandler)}
	env := servertest.Start(t, servertest.Options{Config: server.Config{Enroll: enr, Renew: http.HandlerFunc(enr.Renew), EnrollLimits: limits}})
	enr.CA, enr.DB, enr.Changed, enr.Now = env.CA, env.DB, env.Server.Refresh, env.Clock.Now
	return env
}

// Issue 10, item 12: a rate-limited client waits the server's Retry-After
// and tries again; the refused attempts do not spend its token.
func TestEnrollRetriesWhenRateLimited(t *testing.T) {
	t.Parallel()
	env := startLimited(t, enrollment.Limits{PerAddress: 1, PerAddressBurst: 1})
	ctx := context.Background()
	// Someone at this address spends the burst.
	if _, err := enroll.Enroll(ctx, env.Addr, issue(t, env, "mallory", time.Minute), enroll.Options{}); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var waits []time.Duration
	opts := enroll.Options{Waiting: func(_ int, d time.Duration) {
		mu.Lock()
		waits = append(waits, d)
		mu.Unlock()
	}}
	id, err := enroll.Enroll(ctx, env.Addr, issue(t, env, "alice", time.Minute), opts)
	if err != nil {
		t.Fatalf("enrollment behind a rate limit: %v", err)
	}
	if id.ClientName != "alice" {
		t.Fatalf("enrolled as %q", id.ClientName)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(waits) == 0 || waits[0] < time.Second || waits[0] > 2*time.Second {
		t.Fatalf("waits %v: want one of the server's Retry-After (1s)", waits)
	}
}

// A client that stays limited gives up after its attempts with a clear
// error, and its token can still be used.
func TestEnrollGivesUpWhenRateLimited(t *testing.T) {
	t.Parallel()
	env := startLimited(t, enrollment.Limits{PerAddress: rate.Every(time.Hour), PerAddressBurst: 1})
	ctx := context.Background()
	if _, err := enroll.Enroll(ctx, env.Addr, issue(t, env, "mallory", time.Minute), enroll.Options{}); err != nil {
		t.Fatal(err)
	}
	tok := issue(t, env, "alice", time.Hour)
	attempts := 0
	start := time.Now()
	_, err := enroll.Enroll(ctx, env.Addr, tok, enroll.Options{Attempts: 2, MaxWait: 100 * time.Millisecond, Waiting: func(int, time.Duration) { attempts++ }})
	if !errors.Is(err, enroll.ErrRateLimited) || !strings.Contains(err.Error(), "gave up after 2 attempts") || !strings.Contains(err.Error(), "token was not used") {
		t.Fatalf("limited enrollment: %v", err)
	}
	if attempts != 1 || time.Since(start) > 10*time.Second {
		t.Fatalf("%d waits in %s", attempts, time.Since(start))
	}
	// The token is unspent: redeemable once the limit allows.
	if _, err := env.DB.Tokens().Redeem(ctx, tok.SecretHash(), "alice", time.Now()); err != nil {
		t.Fatalf("the token was spent by refused attempts: %v", err)
	}
}

// Options.LocalAddr picks the source address: the server limits each
// source on its own, so a second address is not held back by the first's
// spent burst, while the first stays limited.
func TestEnrollFromLocalAddr(t *testing.T) {
	t.Parallel()
	env := startLimited(t, enrollment.Limits{PerAddress: rate.Every(time.Hour), PerAddressBurst: 1})
	ctx := context.Background()
	if _, err := enroll.Enroll(ctx, env.Addr, issue(t, env, "mallory", time.Minute), enroll.Options{}); err != nil {
		t.Fatal(err)
	}
	waited := 0
	other := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}
	id, err := enroll.Enroll(ctx, env.Addr, issue(t, env, "alice", time.Minute),
		enroll.Options{LocalAddr: other, Waiting: func(int, time.Duration) { waited++ }})
	if err != nil || id.ClientName != "alice" || waited != 0 {
		t.Fatalf("enrollment from another source address: %v (waited %d times)", err, waited)
	}
	_, err = enroll.Enroll(ctx, env.Addr, issue(t, env, "bob", time.Minute),
		enroll.Options{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)}, Attempts: 1})
	if !errors.Is(err, enroll.ErrRateLimited) {
		t.Fatalf("a second enrollment from the limited source: %v, want rate limited", err)
	}
}
