package control

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/coffer-backup/coffer/internal/fleet/api"
	"github.com/coffer-backup/coffer/internal/serverdb"
)

// countingStore is the real SQLite store; it counts the batches and holds
// the first one until the rest of the reports are queued behind it.
type countingStore struct {
	*serverdb.SQLite
	mu      sync.Mutex
	batches []int
	hold    func()
}

func (s *countingStore) UpdateJobs(ctx context.Context, ups []serverdb.JobUpdate) []error {
	s.mu.Lock()
	first := len(s.batches) == 0
	s.batches = append(s.batches, len(ups))
	s.mu.Unlock()
	if first && s.hold != nil {
		s.hold()
	}
	return s.SQLite.UpdateJobs(ctx, ups)
}

// Reports that arrive while a commit is under way are stored together in
// the next transactions (at most maxBatch each), every one is answered
// with its own outcome, and a refused report (another host's job) does
// not keep the others of its batch from being stored.
func TestReportsCommitInBatches(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, err := serverdb.Open(ctx, filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	const n = maxBatch + 88
	store := &countingStore{SQLite: db}
	c, err := New(Config{Store: store, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	// web0's job exists; "mallory" reports it in the burst.
	victim := fmt.Sprintf("%032x", 0)
	if err := c.Report(ctx, "web0", &api.Report{Job: victim, Kind: api.KindBackup, Repository: "main", State: api.StateRunning, Scheduled: true, Start: time.Unix(100, 0)}); err != nil {
		t.Fatal(err)
	}
	store.mu.Lock()
	store.batches = nil
	store.mu.Unlock()
	store.hold = func() {
		deadline := time.Now().Add(20 * time.Second)
		for time.Now().Before(deadline) {
			c.reports.mu.Lock()
			queued := len(c.reports.queue)
			c.reports.mu.Unlock()
			if queued == n-1 {
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
		t.Error("the reports never queued behind the first commit")
	}

	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			client, id := fmt.Sprintf("web%d", i), fmt.Sprintf("%032x", i+1)
			if i == n/2 {
				client, id = "mallory", victim
			}
			errs[i] = c.Report(ctx, client, &api.Report{Job: id, Kind: api.KindBackup, Repository: "main", State: api.StateSucceeded,
				Scheduled: true, Start: time.Unix(100, 0), End: time.Unix(200, 0)})
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if i == n/2 {
			if !errors.Is(err, ErrForbidden) {
				t.Fatalf("another host's job: %v, want ErrForbidden", err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("report %d: %v", i, err)
		}
	}
	store.mu.Lock()
	batches := store.batches
	store.mu.Unlock()
	if len(batches) != 3 || batches[0] != 1 || batches[1] != maxBatch || batches[2] != n-1-maxBatch {
		t.Fatalf("batches %v, want [1 %d %d]", batches, maxBatch, n-1-maxBatch)
	}
	done, err := db.Jobs(ctx, serverdb.JobFilter{States: []string{string(api.StateSucceeded)}, Limit: 2 * n})
	if err != nil || len(done) != n-1 {
		t.Fatalf("%d succeeded jobs stored, %v; want %d", len(done), err, n-1)
	}
	if j, err := db.Job(ctx, victim); err != nil || j.Client != "web0" || j.State != string(api.StateRunning) {
		t.Fatalf("the other host's job: %+v, %v", j, err)
	}
}
