package serverdb

import (
	"context"
	"errors"
	"sync"
	"testing"
)

// TestUsage: a client's usage is recorded once, changed only within its
// limits (growing fields count; shrinking is always allowed), and many
// concurrent changes through two connections (two servers) add up
// exactly, the limit never passed.
func TestUsage(t *testing.T) {
	t.Parallel()
	eachEngine(t, func(t *testing.T, db *Store, reopen func() (*Store, error)) {
		ctx := context.Background()
		if _, err := db.Usage(ctx, "web1"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("usage before any: %v", err)
		}
		if _, err := db.AddUsage(ctx, "web1", Usage{Charged: 1}, UsageLimits{}); !errors.Is(err, ErrNotFound) {
			t.Fatalf("add before any: %v", err)
		}
		if err := db.SetUsage(ctx, Usage{}); !errors.Is(err, ErrInvalidRecord) {
			t.Fatalf("usage without a client: %v", err)
		}
		u, err := db.InitUsage(ctx, Usage{Client: "web1", Charged: 100, Objects: 2, Repos: 1})
		if err != nil || u.Charged != 100 || u.Objects != 2 || u.Repos != 1 {
			t.Fatalf("init: %+v, %v", u, err)
		}
		// A second count does not replace the first.
		if u, err := db.InitUsage(ctx, Usage{Client: "web1", Charged: 7}); err != nil || u.Charged != 100 {
			t.Fatalf("second init: %+v, %v", u, err)
		}
		lim := UsageLimits{QuotaBytes: 1000, MaxObjects: 10, MaxRepos: 2}
		if u, err := db.AddUsage(ctx, "web1", Usage{Charged: 900, Objects: 1}, lim); err != nil || u.Charged != 1000 || u.Objects != 3 {
			t.Fatalf("add to the quota: %+v, %v", u, err)
		}
		if u, err := db.AddUsage(ctx, "web1", Usage{Charged: 1, Objects: 1}, lim); !errors.Is(err, ErrOverLimit) || u.Charged != 1000 {
			t.Fatalf("add past the quota: %+v, %v", u, err)
		}
		if _, err := db.AddUsage(ctx, "web1", Usage{Repos: 2}, lim); !errors.Is(err, ErrOverLimit) {
			t.Fatalf("add past the repository cap: %v", err)
		}
		// Removing is allowed over any limit.
		if u, err := db.AddUsage(ctx, "web1", Usage{Charged: -500, Objects: -1}, UsageLimits{QuotaBytes: 1}); err != nil || u.Charged != 500 {
			t.Fatalf("remove: %+v, %v", u, err)
		}
		if err := db.SetUsage(ctx, Usage{Client: "web1", Charged: 0, Objects: 0, Repos: 1}); err != nil {
			t.Fatal(err)
		}

		// Two connections, as two servers: 40 uploads of 100 bytes race
		// for a quota of 2,000; exactly 20 fit.
		other, err := reopen()
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = other.Close() }()
		var wg sync.WaitGroup
		var mu sync.Mutex
		fit := 0
		for i := range 40 {
			d := db
			if i%2 == 1 {
				d = other
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := d.AddUsage(ctx, "web1", Usage{Charged: 100, Objects: 1}, UsageLimits{QuotaBytes: 2000})
				switch {
				case err == nil:
					mu.Lock()
					fit++
					mu.Unlock()
				case !errors.Is(err, ErrOverLimit):
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		if u, err := other.Usage(ctx, "web1"); err != nil || fit != 20 || u.Charged != 2000 || u.Objects != 20 {
			t.Fatalf("after the race: %d fit, %+v, %v", fit, u, err)
		}
	})
}
