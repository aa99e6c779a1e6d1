package server

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coffer-backup/coffer/internal/server/audit"
)

// TestAuditElectionReportsStoppedLog: while the writer's place is free
// and this server cannot take it, the audit-log-stopped alert is raised
// once per reason, again when the reason changes (a log that cannot be
// opened, then one behind or ahead of the kept head: the second is not
// hidden behind the first), and not while the database cannot be checked;
// a takeover that succeeds ends it.
func TestAuditElectionReportsStoppedLog(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	db := openStateDB(t, dir)
	fails := []error{
		errors.New("audit directory unreadable"),
		errors.New("audit directory unreadable"),
		fmt.Errorf("%w: entries 3..8 follow the kept head", audit.ErrHeadMismatch),
		fmt.Errorf("%w: entries 3..8 follow the kept head", audit.ErrHeadMismatch),
		fmt.Errorf("%w: entries 3..9 follow the kept head", audit.ErrHeadMismatch),
	}
	var (
		mu     sync.Mutex
		calls  int
		alerts []string
	)
	opened := make(chan struct{})
	log := slog.New(slog.DiscardHandler)
	a := &auditElection{db: db, log: log, interval: 5 * time.Millisecond,
		open: func(ctx context.Context) (*audit.Trail, func(), error) {
			mu.Lock()
			calls++
			n := calls
			mu.Unlock()
			if n <= len(fails) {
				return nil, nil, fails[n-1]
			}
			tr, closeT, err := openAudit(ctx, dir, db, "", log)
			if err == nil {
				close(opened)
			}
			return tr, closeT, err
		},
		stopped: func(msg string) {
			mu.Lock()
			defer mu.Unlock()
			alerts = append(alerts, msg)
		}}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		a.run(rctx)
	}()
	select {
	case <-opened:
	case <-time.After(20 * time.Second):
		t.Fatal("the election never took the free writer's place")
	}
	cancel()
	<-done
	a.close()
	mu.Lock()
	defer mu.Unlock()
	if len(alerts) != 2 || !strings.Contains(alerts[0], "cannot open it") || !strings.Contains(alerts[1], "chain head") {
		t.Fatalf("alerts after %d takeover attempts: %q; want one for the unopenable log, then one for the log off the kept head", calls, alerts)
	}
	if got := takeoverFailure(errors.New("dial tcp: connection refused")); got != errCannotCheck {
		t.Fatalf("a database that cannot be reached classes as %v", got)
	}
	if got := takeoverFailure(fmt.Errorf("%w: read the kept head: %w", errNotWriter, driver.ErrBadConn)); got != errCannotCheck {
		t.Fatalf("a database lost while the log was opened classes as %v", got)
	}
}
