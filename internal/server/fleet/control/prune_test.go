package control_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/coffer-backup/coffer/internal/fleet/api"
	"github.com/coffer-backup/coffer/internal/fleet/policy"
	"github.com/coffer-backup/coffer/internal/server/fleet/control"
	"github.com/coffer-backup/coffer/internal/serverdb"
)

// setWith signs client's policy like set, changed by edit.
func (p *policies) setWith(client string, edit func(*policy.Policy)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.gen[client]++
	pol := &policy.Policy{Version: policy.Version, Client: client, Generation: p.gen[client], Issued: time.Now().UTC().Truncate(time.Second),
		Repositories: []policy.Repository{{Name: "main", Paths: []string{"/data"}, Schedule: "every 1h"}}, RestoreRoot: "/srv/restore"}
	edit(pol)
	signed, err := policy.Sign(p.priv, pol)
	if err != nil {
		p.t.Fatal(err)
	}
	p.m[client] = signed
}

func snapName(i int) string { return fmt.Sprintf("%064x", i+1) }

// A prune job's grant names what the keep rules forget on the server's
// stamps, and is recorded for the storage server; the prune schedule
// orders one when due.
func TestPruneGrantFromStamps(t *testing.T) {
	t.Parallel()
	f := start(t)
	f.host(t, "web1")
	f.pol.setWith("web1", func(p *policy.Policy) {
		p.Repositories[0].Keep = policy.Keep{Last: 2}
		p.Repositories[0].Prune = &policy.Prune{Schedule: "every 1h"}
	})
	ctx := context.Background()
	t0 := time.Now().Add(-10 * time.Hour).UTC()
	for i := range 4 {
		if _, err := f.env.DB.StampSnapshot(ctx, "web1", "web1", snapName(i), t0.Add(time.Duration(i)*time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	// A name no grant can carry is never forgotten.
	if _, err := f.env.DB.StampSnapshot(ctx, "web1", "web1", "not-a-snapshot-id", t0.Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	grantOf := func(j string) *api.Grant {
		t.Helper()
		var spec api.Job
		rec, err := f.env.DB.Job(ctx, j)
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(rec.Spec, &spec); err != nil || spec.Grant == nil {
			t.Fatalf("job %s: spec %s, %v", j, rec.Spec, err)
		}
		return spec.Grant
	}
	job, err := f.ctl.Order(ctx, control.Order{Client: "web1", Kind: api.KindPrune, By: "user:admin"})
	if err != nil {
		t.Fatal(err)
	}
	g := grantOf(job.ID)
	if want := []string{snapName(1), snapName(0)}; !slices.Equal(g.Snapshots, want) {
		t.Fatalf("grant %v, want the two oldest %v", g.Snapshots, want)
	}
	if d := g.NotAfter.Sub(g.NotBefore); d != control.PruneWindow {
		t.Errorf("grant window %s", d)
	}
	active, err := f.env.DB.ActiveGrants(ctx, "web1", "web1", time.Now())
	if err != nil || len(active) != 1 || active[0].Job != job.ID || !slices.Equal(active[0].Snapshots, g.Snapshots) {
		t.Fatalf("recorded grants %+v, %v", active, err)
	}
	// A deleted object no longer counts: the next grant names the one left.
	if err := f.env.DB.SetStampDeleted(ctx, "web1", "web1", snapName(0), time.Now()); err != nil {
		t.Fatal(err)
	}
	job2, err := f.ctl.Order(ctx, control.Order{Client: "web1", Kind: api.KindPrune, By: "user:admin"})
	if err != nil {
		t.Fatal(err)
	}
	if g := grantOf(job2.ID); !slices.Equal(g.Snapshots, []string{snapName(1)}) {
		t.Fatalf("second grant %v", g.Snapshots)
	}

	// The schedule: not due an hour after the last prune, due after.
	if n, err := f.ctl.CheckPrunes(ctx); err != nil || n != 0 {
		t.Fatalf("check right after a prune: %d, %v", n, err)
	}
	f.clk.advance(2 * time.Hour)
	if n, err := f.ctl.CheckPrunes(ctx); err != nil || n != 1 {
		t.Fatalf("check when due: %d, %v", n, err)
	}
	if n, err := f.ctl.CheckPrunes(ctx); err != nil || n != 0 {
		t.Fatalf("check again: %d, %v", n, err)
	}
	jobs, err := f.env.DB.Jobs(ctx, serverdb.JobFilter{Client: "web1", Kind: string(api.KindPrune), Limit: 1})
	if err != nil || len(jobs) != 1 || jobs[0].OrderedBy != control.ScheduledBy {
		t.Fatalf("the scheduled prune: %+v, %v", jobs, err)
	}
}
