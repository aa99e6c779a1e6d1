package control

import (
	"strings"
	"testing"
	"time"

	"github.com/coffer-backup/coffer/internal/auditlog"
	"github.com/coffer-backup/coffer/internal/fleet/api"
)

// TestOrderEntries: each order is recorded with who ordered it, under the
// action of its kind, and a prune's grant with it.
func TestOrderEntries(t *testing.T) {
	t.Parallel()
	alice := auditlog.Actor{Name: "alice", Role: "operator"}
	now := time.Date(2026, 12, 6, 4, 0, 0, 0, time.UTC)
	cases := []struct {
		o       Order
		job     api.Job
		actions string
		actor   auditlog.Actor
	}{
		{Order{Client: "web1", Actor: alice}, api.Job{ID: "j1", Kind: api.KindBackup}, "run-now", alice},
		{Order{Client: "web1", Actor: alice}, api.Job{ID: "j2", Kind: api.KindCheck, Check: &api.Check{ReadDataSubset: "5%"}}, "run-now", alice},
		{Order{Client: "web1", Actor: alice}, api.Job{ID: "j3", Kind: api.KindRestore, Restore: &api.Restore{Snapshot: "latest", Target: "/var/restore/x"}}, "restore", alice},
		{Order{Client: "web1", Actor: alice}, api.Job{ID: "j4", Kind: api.KindPrune, Grant: &api.Grant{Snapshots: []string{"a", "b"}, NotBefore: now, NotAfter: now.Add(time.Hour)}}, "run-now grant", alice},
		{Order{Client: "web1", By: ScheduledBy}, api.Job{ID: "j5", Kind: api.KindPrune, Grant: &api.Grant{Snapshots: []string{}, NotBefore: now, NotAfter: now}}, "prune grant", ServerActor},
	}
	for _, c := range cases {
		es := orderEntries(c.o, c.job)
		var actions []string
		for _, e := range es {
			actions = append(actions, e.Action)
			if e.Actor != c.actor || e.Target != "client:web1" || e.Outcome != auditlog.OutcomeOK || e.Details["job"] != c.job.ID {
				t.Errorf("%s: entry %+v", c.job.ID, e)
			}
		}
		if got := strings.Join(actions, " "); got != c.actions {
			t.Errorf("%s: actions %q, want %q", c.job.ID, got, c.actions)
		}
	}
	if d := orderEntries(cases[2].o, cases[2].job)[0].Details; d["into"] != "/var/restore/x" || d["snapshot"] != "latest" {
		t.Errorf("restore details %v", d)
	}
	if d := orderEntries(cases[3].o, cases[3].job)[1].Details; d["snapshots"] != "2" || d["names"] != "a,b" || d["not_after"] != "2026-12-06T05:00:00Z" {
		t.Errorf("grant details %v", d)
	}
	many := make([]string, 100)
	for i := range many {
		many[i] = "s"
	}
	if got := clipJoin(many); !strings.HasSuffix(got, "(36 more)") || strings.Count(got, "s") != maxGrantNames {
		t.Errorf("clipJoin of 100: %q", got)
	}
}
