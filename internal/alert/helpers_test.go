package alert_test

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/coffer-backup/coffer/internal/alert"
	"github.com/coffer-backup/coffer/internal/serverdb"
)

// newStore opens a real state database in a temporary directory.
func newStore(t *testing.T) *serverdb.SQLite {
	t.Helper()
	db, err := serverdb.Open(context.Background(), filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// secretFile writes content to a new file of the given mode.
func secretFile(t *testing.T, content string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
	return p
}

// attempts records a dispatcher's attempts.
type attempts struct {
	mu  sync.Mutex
	all []alert.Attempt
}

func (a *attempts) record(x alert.Attempt) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.all = append(a.all, x)
}

func (a *attempts) of(channel string) []alert.Attempt {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []alert.Attempt
	for _, x := range a.all {
		if x.Channel == channel {
			out = append(out, x)
		}
	}
	return out
}

// startDispatcher puts the channels, starts a dispatcher with fast
// retries and returns it; it stops at the end of the test.
func startDispatcher(t *testing.T, store alert.Store, opts alert.Options, channels ...alert.Channel) *alert.Dispatcher {
	t.Helper()
	ctx := context.Background()
	for _, c := range channels {
		if err := store.PutAlertChannel(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	if opts.Poll == 0 {
		opts.Poll = 50 * time.Millisecond
	}
	d, err := alert.NewDispatcher(store, opts)
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- d.Run(runCtx) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return d
}

// waitItems waits until every item of channel satisfies ok.
func waitItems(t *testing.T, store alert.Store, channel string, timeout time.Duration, ok func([]alert.Item) bool) []alert.Item {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		items, err := store.AlertItems(context.Background(), channel)
		if err != nil {
			t.Fatal(err)
		}
		if ok(items) {
			return items
		}
		if time.Now().After(deadline) {
			t.Fatalf("items of %s after %v: %+v", channel, timeout, items)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func allState(s alert.ItemState) func([]alert.Item) bool {
	return func(items []alert.Item) bool {
		for _, it := range items {
			if it.State != s {
				return false
			}
		}
		return len(items) > 0
	}
}

var missed = alert.Event{
	Kind: alert.BackupMissed, Client: "web1", Groups: []string{"prod"},
	Time:    time.Date(2026, 12, 6, 3, 0, 0, 0, time.UTC),
	Summary: "no successful backup since 2026-12-04T02:00:00Z (cadence 24h, grace 24h)",
	Details: map[string]string{"last_success": "2026-12-04T02:00:00Z"},
}
