package serverdb

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestJobsStore(t *testing.T) {
	t.Parallel()
	eachEngine(t, func(t *testing.T, db *Store, reopen func() (*Store, error)) {
		ctx := context.Background()
		t0 := time.Unix(1000, 0).UTC()
		j := Job{ID: "a1", Client: "web1", Kind: "backup", Repository: "main", State: "queued", Created: t0, Updated: t0,
			Spec: []byte(`{"id":"a1"}`), OrderedBy: "user:alice"}
		if err := db.InsertJob(ctx, j); err != nil {
			t.Fatal(err)
		}
		if err := db.InsertJob(ctx, j); !errors.Is(err, ErrConflict) {
			t.Fatalf("second insert: %v, want ErrConflict", err)
		}
		if err := db.InsertJob(ctx, Job{ID: "x"}); !errors.Is(err, ErrInvalidRecord) {
			t.Fatalf("empty job: %v", err)
		}
		got, err := db.Job(ctx, "a1")
		if err != nil || got.Client != "web1" || string(got.Spec) != `{"id":"a1"}` || got.Stats != nil || !got.Created.Equal(t0) {
			t.Fatalf("read back %+v, %v", got, err)
		}
		if _, err := db.Job(ctx, "nope"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("missing job: %v", err)
		}

		// UpdateJob: the change function's error rolls back.
		boom := errors.New("boom")
		err = db.UpdateJob(ctx, "a1", func(cur Job, found bool) (*Job, error) {
			cur.State = "running"
			return &cur, boom
		})
		if !errors.Is(err, boom) {
			t.Fatal(err)
		}
		if got, _ := db.Job(ctx, "a1"); got.State != "queued" {
			t.Fatalf("a failed change was stored: %s", got.State)
		}
		err = db.UpdateJob(ctx, "a1", func(cur Job, found bool) (*Job, error) {
			if !found {
				t.Fatal("not found")
			}
			cur.State, cur.Start, cur.Stats = "running", t0.Add(time.Second), []byte(`{"files_new":1}`)
			return &cur, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		// Inserting through UpdateJob.
		err = db.UpdateJob(ctx, "b2", func(cur Job, found bool) (*Job, error) {
			if found {
				t.Fatal("found a job that does not exist")
			}
			return &Job{Client: "web2", Kind: "check", Repository: "main", State: "running", Scheduled: true, Created: t0.Add(time.Minute)}, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		running, err := db.Jobs(ctx, JobFilter{States: []string{"running"}})
		if err != nil || len(running) != 2 || running[0].ID != "b2" {
			t.Fatalf("running jobs, newest first: %+v, %v", running, err)
		}
		if l, _ := db.Jobs(ctx, JobFilter{Client: "web1", Ordered: true, Kind: "backup", Repository: "main"}); len(l) != 1 || l[0].State != "running" || string(l[0].Stats) != `{"files_new":1}` {
			t.Fatalf("filtered: %+v", l)
		}
		if l, _ := db.Jobs(ctx, JobFilter{Client: "web2", Ordered: true}); len(l) != 0 {
			t.Fatalf("a scheduled job listed as ordered: %+v", l)
		}

		// A restart marks running jobs failed by the server.
		n, err := db.FailRunningJobs(ctx, "server restarted", t0.Add(time.Hour))
		if err != nil || n != 2 {
			t.Fatalf("FailRunningJobs: %d, %v", n, err)
		}
		if got, _ := db.Job(ctx, "b2"); got.State != "failed" || !got.ServerSet || got.Error != "server restarted" {
			t.Fatalf("after a restart: %+v", got)
		}
	})
}

func TestAgentsAndWatches(t *testing.T) {
	t.Parallel()
	eachEngine(t, func(t *testing.T, db *Store, reopen func() (*Store, error)) {
		ctx := context.Background()
		t0 := time.Unix(1000, 0).UTC()
		if err := db.AgentConnected(ctx, "web1", "1.0.0", t0); err != nil {
			t.Fatal(err)
		}
		if err := db.AddDropped(ctx, "web1", 3); err != nil {
			t.Fatal(err)
		}
		if err := db.AgentConnected(ctx, "web1", "1.1.0", t0.Add(time.Second)); err != nil {
			t.Fatal(err)
		}
		ag, err := db.Agents(ctx)
		if err != nil || ag["web1"].Version != "1.1.0" || ag["web1"].Dropped != 3 || !ag["web1"].Connected.Equal(t0.Add(time.Second)) {
			t.Fatalf("agents %+v, %v", ag, err)
		}

		if err := db.StartWatch(ctx, "web1", "main", t0); err != nil {
			t.Fatal(err)
		}
		if err := db.StartWatch(ctx, "web1", "main", t0.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		missed := Job{ID: "m1", Client: "web1", Kind: "backup", Repository: "main", State: "missed", Created: t0, ServerSet: true}
		deadline := t0.Add(time.Minute)
		if err := db.RecordMissed(ctx, missed, deadline); err != nil {
			t.Fatal(err)
		}
		missed.ID = "m2"
		if err := db.RecordMissed(ctx, missed, deadline); !errors.Is(err, ErrConflict) {
			t.Fatalf("the same deadline again: %v, want ErrConflict", err)
		}
		if _, err := db.Job(ctx, "m2"); !errors.Is(err, ErrNotFound) {
			t.Fatal("a refused missed record stored its job")
		}
		w, err := db.Watches(ctx)
		if err != nil || !w["web1"]["main"].Since.Equal(t0) || !w["web1"]["main"].LastMissed.Equal(deadline) {
			t.Fatalf("watches %+v, %v", w, err)
		}
	})
}

// UpdateJobs applies a batch in one transaction, in order: a refused or
// invalid change leaves its job alone and the others are kept; a later
// update of the same job sees the earlier one.
func TestUpdateJobsBatch(t *testing.T) {
	t.Parallel()
	eachEngine(t, func(t *testing.T, db *Store, reopen func() (*Store, error)) {
		ctx := context.Background()
		t0 := time.Unix(2000, 0).UTC()
		put := func(client, state string) func(Job, bool) (*Job, error) {
			return func(cur Job, found bool) (*Job, error) {
				if !found {
					cur = Job{Client: client, Kind: "backup", Repository: "main", Scheduled: true, Created: t0}
				}
				cur.State, cur.Updated = state, t0
				return &cur, nil
			}
		}
		boom := errors.New("boom")
		var sawRunning bool
		errs := db.UpdateJobs(ctx, []JobUpdate{
			{ID: "j1", Change: put("web1", "running")},
			{ID: "j2", Change: func(Job, bool) (*Job, error) { return nil, boom }},
			{ID: "j3", Change: func(Job, bool) (*Job, error) { return &Job{Client: "web3"}, nil }}, // invalid
			{ID: "j1", Change: func(cur Job, found bool) (*Job, error) {
				sawRunning = found && cur.State == "running"
				return put("web1", "succeeded")(cur, found)
			}},
			{ID: "j4", Change: put("web4", "running")},
		})
		if len(errs) != 5 || errs[0] != nil || !errors.Is(errs[1], boom) || !errors.Is(errs[2], ErrInvalidRecord) || errs[3] != nil || errs[4] != nil {
			t.Fatalf("errors %v", errs)
		}
		if !sawRunning {
			t.Fatal("the second update of j1 did not see the first")
		}
		for id, want := range map[string]string{"j1": "succeeded", "j4": "running"} {
			if j, err := db.Job(ctx, id); err != nil || j.State != want {
				t.Fatalf("%s: %+v, %v; want %s", id, j, err, want)
			}
		}
		for _, id := range []string{"j2", "j3"} {
			if _, err := db.Job(ctx, id); !errors.Is(err, ErrNotFound) {
				t.Fatalf("%s stored after a refused change: %v", id, err)
			}
		}
		if errs := db.UpdateJobs(ctx, nil); len(errs) != 0 {
			t.Fatalf("empty batch: %v", errs)
		}
	})
}

// AgentsConnected records a batch of connections in one transaction; the
// last of a client's wins, as with AgentConnected one by one.
func TestAgentsConnectedBatch(t *testing.T) {
	t.Parallel()
	eachEngine(t, func(t *testing.T, db *Store, reopen func() (*Store, error)) {
		ctx := context.Background()
		t0 := time.Unix(3000, 0).UTC()
		errs := db.AgentsConnected(ctx, []AgentConn{
			{Client: "web1", Version: "1.0.0", Connected: t0},
			{Client: "web2", Version: "1.2.0", Connected: t0},
			{Client: "web1", Version: "1.1.0", Connected: t0.Add(time.Second)},
		})
		if len(errs) != 3 || errors.Join(errs...) != nil {
			t.Fatalf("errors %v", errs)
		}
		ag, err := db.Agents(ctx)
		if err != nil || len(ag) != 2 || ag["web1"].Version != "1.1.0" || !ag["web1"].Connected.Equal(t0.Add(time.Second)) || ag["web2"].Version != "1.2.0" {
			t.Fatalf("agents %+v, %v", ag, err)
		}
		if errs := db.AgentsConnected(ctx, nil); len(errs) != 0 {
			t.Fatalf("empty batch: %v", errs)
		}
	})
}
