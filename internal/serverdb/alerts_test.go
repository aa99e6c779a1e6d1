package serverdb

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/coffer-backup/coffer/internal/alert"
)

func TestAlertChannels(t *testing.T) {
	eachEngine(t, func(t *testing.T, db *Store, reopen func() (*Store, error)) {
		ctx := context.Background()
		c := alert.Channel{Name: "log", Kind: alert.Syslog, Syslog: &alert.SyslogConfig{}}
		if err := db.PutAlertChannel(ctx, c); err != nil {
			t.Fatal(err)
		}
		c.Events = []alert.Kind{alert.BackupMissed}
		if err := db.PutAlertChannel(ctx, c); err != nil { // replaces
			t.Fatal(err)
		}
		bad := alert.Channel{Name: "Bad", Kind: alert.Syslog, Syslog: &alert.SyslogConfig{}}
		if err := db.PutAlertChannel(ctx, bad); !errors.Is(err, alert.ErrInvalid) {
			t.Fatalf("invalid channel stored: %v", err)
		}
		got, err := db.AlertChannels(ctx)
		if err != nil || len(got) != 1 || len(got[0].Events) != 1 {
			t.Fatalf("AlertChannels = %+v, %v", got, err)
		}
		if err := db.RemoveAlertChannel(ctx, "nosuch"); !errors.Is(err, alert.ErrNoChannel) {
			t.Fatalf("remove unknown: %v", err)
		}
		if err := db.RemoveAlertChannel(ctx, "log"); err != nil {
			t.Fatal(err)
		}
		if got, _ := db.AlertChannels(ctx); len(got) != 0 {
			t.Fatalf("left %+v", got)
		}
	})
}

func TestAlertOutbox(t *testing.T) {
	eachEngine(t, func(t *testing.T, db *Store, reopen func() (*Store, error)) {
		ctx := context.Background()
		var err error
		ev := alert.Event{Kind: alert.BackupFailed, Client: "web1", Time: t0, Details: map[string]string{"k": "v"}}
		items := []alert.Item{
			{Channel: "a", Event: ev, Created: t0, NextAttempt: t0},
			{Channel: "a", Event: ev, Created: t0, NextAttempt: t0.Add(time.Hour)},
			{Channel: "b", Event: ev, Created: t0, NextAttempt: t0},
		}
		if err := db.EnqueueAlerts(ctx, items); err != nil {
			t.Fatal(err)
		}
		if err := db.EnqueueAlerts(ctx, []alert.Item{{Channel: "a", Event: ev}}); !errors.Is(err, ErrInvalidRecord) {
			t.Fatalf("item without times: %v", err)
		}
		// Durable: a reopened database has them.
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
		if db, err = reopen(); err != nil {
			t.Fatal(err)
		}
		defer func() { _ = db.Close() }()

		got, err := db.ClaimAlerts(ctx, "a", t0, time.Minute, 10)
		if err != nil || len(got) != 1 || got[0].Channel != "a" || got[0].Event.Details["k"] != "v" || !got[0].Event.Time.Equal(t0) || got[0].State != alert.Pending {
			t.Fatalf("claim = %+v, %v", got, err)
		}
		id := got[0].ID
		// Leased: no one else takes it until the lease ends.
		if again, _ := db.ClaimAlerts(ctx, "a", t0.Add(30*time.Second), time.Minute, 10); len(again) != 0 {
			t.Fatalf("claimed twice: %+v", again)
		}
		if again, _ := db.ClaimAlerts(ctx, "a", t0.Add(time.Minute), time.Minute, 10); len(again) != 1 || again[0].ID != id {
			t.Fatalf("lease did not end: %+v", again)
		}
		if err := db.MarkAlertsFailed(ctx, []int64{id}, alert.Failure{At: t0, Error: "refused", Next: t0.Add(5 * time.Minute)}); err != nil {
			t.Fatal(err)
		}
		if err := db.MarkAlertsFailed(ctx, []int64{id}, alert.Failure{At: t0, Error: "x"}); !errors.Is(err, ErrInvalidRecord) {
			t.Fatalf("failure without next: %v", err)
		}
		all, _ := db.AlertItems(ctx, "a")
		if len(all) != 2 || all[0].Attempts != 1 || all[0].LastError != "refused" || !all[0].NextAttempt.Equal(t0.Add(5*time.Minute)) {
			t.Fatalf("after failure: %+v", all)
		}
		if err := db.MarkAlertsFailed(ctx, []int64{id}, alert.Failure{At: t0.Add(time.Hour), Error: "gone", Dead: true}); err != nil {
			t.Fatal(err)
		}
		b, _ := db.ClaimAlerts(ctx, "b", t0, time.Minute, 10)
		if err := db.MarkAlertsDelivered(ctx, []int64{b[0].ID}, t0.Add(2*time.Hour)); err != nil {
			t.Fatal(err)
		}
		all, _ = db.AlertItems(ctx, "")
		if len(all) != 3 || all[0].State != alert.Dead || all[0].Attempts != 2 || all[1].State != alert.Pending || all[2].State != alert.Delivered || !all[2].Done.Equal(t0.Add(2*time.Hour)) {
			t.Fatalf("states: %+v", all)
		}
		if late, _ := db.ClaimAlerts(ctx, "a", t0.Add(24*time.Hour), time.Minute, 10); len(late) != 1 || late[0].ID == id {
			t.Fatalf("a dead item was claimed: %+v", late)
		}
		n, err := db.PruneAlerts(ctx, t0.Add(90*time.Minute))
		if err != nil || n != 1 {
			t.Fatalf("prune = %d, %v", n, err)
		}
		// Removing a channel drops its pending items.
		if err := db.PutAlertChannel(ctx, alert.Channel{Name: "a", Kind: alert.Syslog, Syslog: &alert.SyslogConfig{}}); err != nil {
			t.Fatal(err)
		}
		if err := db.RemoveAlertChannel(ctx, "a"); err != nil {
			t.Fatal(err)
		}
		if left, _ := db.AlertItems(ctx, "a"); len(left) != 0 {
			t.Fatalf("pending items of a removed channel: %+v", left)
		}
	})
}
