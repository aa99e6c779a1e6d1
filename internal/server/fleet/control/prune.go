package control

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/coffer-backup/coffer/internal/fleet/api"
	"github.com/coffer-backup/coffer/internal/fleet/policy"
	"github.com/coffer-backup/coffer/internal/retention"
	"github.com/coffer-backup/coffer/internal/schedule"
	"github.com/coffer-backup/coffer/internal/serverdb"
)

// ScheduledBy is the OrderedBy of prune jobs the server orders on a
// policy's prune schedule.
const ScheduledBy = "schedule"

// StorageRepo returns the name under which the server stores a policy
// repository of client: the default location is the repository named
// after the client, a coffer://HOST[:PORT]/REPO location is REPO; any
// other location is not on a coffer server ("").
func StorageRepo(client string, r policy.Repository) string {
	if r.Location == "" {
		return client
	}
	rest, ok := strings.CutPrefix(r.Location, "coffer://")
	if !ok {
		return ""
	}
	_, repo, ok := strings.Cut(rest, "/")
	if !ok {
		return ""
	}
	return repo
}

// Rules turns a policy's keep into retention's rules.
func Rules(k policy.Keep) (retention.Rules, error) {
	r := retention.Rules{Last: k.Last, Hourly: k.Hourly, Daily: k.Daily, Weekly: k.Weekly, Monthly: k.Monthly, Yearly: k.Yearly}
	if k.Within != "" {
		d, err := retention.ParseDuration(k.Within)
		if err != nil {
			return r, fmt.Errorf("%w: keep.within: %v", ErrRefused, err)
		}
		r.Within = d
	}
	return r, nil
}

// Forgettable returns the snapshot object names of client's repository
// repo that the keep rules forget, evaluated on the server's stamps
// (arrival time, then sequence number) of the objects that exist, never on
// the time a client wrote into a snapshot. Empty rules forget nothing.
func (c *Control) Forgettable(ctx context.Context, client, repo string, k policy.Keep) ([]string, error) {
	rules, err := Rules(k)
	if err != nil || rules.Empty() {
		return []string{}, err
	}
	stamps, err := c.cfg.Store.Stamps(ctx, client, repo)
	if err != nil {
		return nil, err
	}
	items := make([]retention.Item, 0, len(stamps))
	for _, st := range stamps {
		// A name a grant cannot carry (not a snapshot ID) is never forgotten.
		if st.Deleted.IsZero() && api.ValidSnapshotName(st.Name) {
			items = append(items, retention.Item{Name: st.Name, Time: st.Arrived, Seq: st.Seq})
		}
	}
	_, forget := retention.Apply(items, rules, time.UTC)
	names := make([]string, 0, len(forget))
	for _, it := range forget {
		names = append(names, it.Name)
	}
	return names, nil
}

// pruneGrant makes the grant of a prune job on repository r of client:
// the snapshots retention forgets, and PruneWindow from now.
func (c *Control) pruneGrant(ctx context.Context, client string, r policy.Repository, now time.Time) (*api.Grant, error) {
	g := &api.Grant{Snapshots: []string{}, NotBefore: now, NotAfter: now.Add(PruneWindow)}
	repo := StorageRepo(client, r)
	if repo == "" {
		return g, nil
	}
	names, err := c.Forgettable(ctx, client, repo, r.Keep)
	if err != nil {
		return nil, err
	}
	g.Snapshots = names
	return g, nil
}

// recordGrant stores an ordered prune job's grant for the storage server
// to enforce.
func (c *Control) recordGrant(ctx context.Context, client string, r policy.Repository, job api.Job) error {
	repo := StorageRepo(client, r)
	if repo == "" || job.Grant == nil {
		return nil
	}
	return c.cfg.Store.PutGrant(ctx, serverdb.Grant{Job: job.ID, Client: client, Repo: repo,
		NotBefore: job.Grant.NotBefore, NotAfter: job.Grant.NotAfter, Snapshots: job.Grant.Snapshots})
}

// CheckPrunes orders a prune job, with its grant, for every repository of
// every host's policy (revoked hosts aside) whose prune schedule has come
// due since its last prune job (or since the policy was issued), on the
// server's clock. It returns how many it ordered.
func (c *Control) CheckPrunes(ctx context.Context) (int, error) {
	clients, err := c.cfg.Store.Clients(ctx)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, cl := range clients {
		if cl.Revoked() {
			continue
		}
		cp, ok, err := c.policyOf(ctx, cl.Name)
		if err != nil || !ok {
			continue
		}
		for _, r := range cp.policy.Repositories {
			due, err := c.pruneDue(ctx, cl.Name, cp.policy, r)
			if err != nil {
				return n, err
			}
			if !due {
				continue
			}
			if _, err := c.Order(ctx, Order{Client: cl.Name, Kind: api.KindPrune, Repository: r.Name, By: ScheduledBy}); err != nil {
				c.log.Error("order a scheduled prune", "client", cl.Name, "repository", r.Name, "err", err)
				continue
			}
			n++
		}
	}
	return n, nil
}

// pruneDue says whether repository r's prune schedule has a run due after
// its last prune job, or after the policy was issued if it has none.
func (c *Control) pruneDue(ctx context.Context, client string, p *policy.Policy, r policy.Repository) (bool, error) {
	if r.Prune == nil {
		return false, nil
	}
	sched, err := schedule.Parse(r.Prune.Schedule)
	if err != nil || sched.IsZero() {
		return false, nil // Validate refuses such a policy: nothing to order
	}
	last, err := c.cfg.Store.Jobs(ctx, serverdb.JobFilter{Client: client, Kind: string(api.KindPrune), Repository: r.Name, Limit: 1})
	if err != nil {
		return false, err
	}
	base := p.Issued
	if len(last) > 0 {
		base = last[0].Created
	}
	next := sched.In(time.UTC).Next(base)
	return !next.IsZero() && !c.now().Before(next), nil
}
