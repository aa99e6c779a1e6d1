package control

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"strings"
	"time"

	"github.com/coffer-backup/coffer/internal/auditlog"
	"github.com/coffer-backup/coffer/internal/fleet/api"
	"github.com/coffer-backup/coffer/internal/fleet/policy"
	"github.com/coffer-backup/coffer/internal/serverdb"
)

// PruneWindow is how long a prune job's grant lets the host delete packs
// and indexes after it was ordered.
const PruneWindow = time.Hour

// Order is a job the server orders on a host.
type Order struct {
	Client string
	Kind   api.JobKind
	// Repository is the policy repository's name; empty: its first.
	Repository string
	Check      *api.Check   // check jobs
	Restore    *api.Restore // restore jobs
	// By names who ordered it, for the job's record ("user:alice").
	By string
	// Actor is who ordered it, for the audit log; zero: the server itself
	// (ServerActor).
	Actor auditlog.Actor
}

// Order queues a job on a host and wakes its stream, so an online agent
// gets it at once and an offline one when it connects. It refuses
// (ErrRefused, or serverdb.ErrNotFound for an unknown host) a revoked
// host, a host without a policy, a repository its policy does not name,
// and a restore whose target does not lie under the policy's restore
// root. A prune carries a grant: the snapshot objects the repository's keep
// rules forget, evaluated on the server's arrival stamps (Forgettable),
// and PruneWindow from now for packs and indexes; the grant is recorded
// for the storage server to enforce. The order, and a prune's grant, are
// recorded in the audit log (Config.Audit) before the job is queued.
func (c *Control) Order(ctx context.Context, o Order) (serverdb.Job, error) {
	cl, err := c.cfg.Store.Client(ctx, o.Client)
	if err != nil {
		return serverdb.Job{}, fmt.Errorf("host %q: %w", o.Client, err)
	}
	if cl.Revoked() {
		return serverdb.Job{}, fmt.Errorf("%w: host %s is revoked", ErrRefused, o.Client)
	}
	cp, ok, err := c.policyOf(ctx, o.Client)
	if err != nil {
		return serverdb.Job{}, err
	}
	if !ok {
		return serverdb.Job{}, fmt.Errorf("%w: host %s has no policy", ErrRefused, o.Client)
	}
	pr, err := pickRepository(cp.policy, o.Repository)
	if err != nil {
		return serverdb.Job{}, err
	}
	repo := pr.Name
	now := c.now().UTC()
	job := api.Job{ID: newID(), Kind: o.Kind, Repository: repo, Created: now, Check: o.Check, Restore: o.Restore}
	switch o.Kind {
	case api.KindRestore:
		if o.Restore == nil {
			return serverdb.Job{}, fmt.Errorf("%w: a restore needs a snapshot and a target", ErrRefused)
		}
		if err := UnderRoot(cp.policy.Root(), o.Restore.Target); err != nil {
			return serverdb.Job{}, err
		}
	case api.KindPrune:
		if job.Grant, err = c.pruneGrant(ctx, o.Client, pr, now); err != nil {
			return serverdb.Job{}, err
		}
	}
	if err := job.Validate(); err != nil {
		return serverdb.Job{}, err
	}
	spec, err := json.Marshal(&job)
	if err != nil {
		return serverdb.Job{}, err
	}
	rec := serverdb.Job{ID: job.ID, Client: o.Client, Kind: string(job.Kind), Repository: repo, State: string(api.StateQueued),
		Created: now, Updated: now, Spec: spec, OrderedBy: o.By}
	// Audited before it is queued: an order the log cannot take is not made.
	for _, e := range orderEntries(o, job) {
		if err := c.record(ctx, e); err != nil {
			return serverdb.Job{}, err
		}
	}
	if err := c.cfg.Store.InsertJob(ctx, rec); err != nil {
		return serverdb.Job{}, err
	}
	if err := c.recordGrant(ctx, o.Client, pr, job); err != nil {
		// The job stays queued; without its grant the server refuses its
		// deletions and the job fails, deleting nothing.
		c.log.Error("record a prune job's grant", "client", o.Client, "job", job.ID, "err", err)
	}
	c.hub.Notify(o.Client)
	return rec, nil
}

// pickRepository returns p's repository called name, or p's first when
// name is empty.
func pickRepository(p *policy.Policy, name string) (policy.Repository, error) {
	if len(p.Repositories) == 0 {
		return policy.Repository{}, fmt.Errorf("%w: host %s's policy has no repository", ErrRefused, p.Client)
	}
	if name == "" {
		return p.Repositories[0], nil
	}
	for _, r := range p.Repositories {
		if r.Name == name {
			return r, nil
		}
	}
	return policy.Repository{}, fmt.Errorf("%w: host %s's policy has no repository %q", ErrRefused, p.Client, name)
}

// UnderRoot checks that target is a clean absolute path at or under root.
func UnderRoot(root, target string) error {
	if !path.IsAbs(target) || path.Clean(target) != target {
		return fmt.Errorf("%w: restore target %q is not a clean absolute path", ErrRefused, target)
	}
	if target != root && !strings.HasPrefix(target, strings.TrimSuffix(root, "/")+"/") {
		return fmt.Errorf("%w: restore target %q is not under the host's restore root %s", ErrRefused, target, root)
	}
	return nil
}

// newID returns a random job ID.
func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand)
	return api.NewID(b)
}

// Cancel orders job id cancelled: a job still queued is marked cancelled
// at once; a running one is told to its agent, which reports how it ended.
// Either way an online agent gets a cancel message. A finished job cannot
// be cancelled (serverdb.ErrConflict); an unknown one is
// serverdb.ErrNotFound. by names who cancels it for the job's record,
// actor for the audit log, which records the cancellation once made.
func (c *Control) Cancel(ctx context.Context, id, by string, actor auditlog.Actor) (serverdb.Job, error) {
	if !api.ValidID(id) {
		return serverdb.Job{}, fmt.Errorf("%w: job ID %q", ErrRefused, id)
	}
	now := c.now().UTC()
	var out serverdb.Job
	err := c.cfg.Store.UpdateJob(ctx, id, func(cur serverdb.Job, found bool) (*serverdb.Job, error) {
		if !found {
			return nil, fmt.Errorf("job %s: %w", id, serverdb.ErrNotFound)
		}
		if isFinal(cur.State) {
			return nil, fmt.Errorf("%w: job %s ended %s already", serverdb.ErrConflict, id, cur.State)
		}
		cur.CancelRequested, cur.Updated = true, now
		if cur.State == string(api.StateQueued) {
			cur.State, cur.End, cur.ServerSet = string(api.StateCancelled), now, true
			cur.Error = "cancelled before it started"
			if by != "" {
				cur.Error += " by " + by
			}
		}
		out = cur
		return &cur, nil
	})
	if err != nil {
		return serverdb.Job{}, err
	}
	c.hub.Notify(out.Client)
	err = c.record(ctx, auditlog.Entry{Actor: actor, Action: AuditCancel, Target: "client:" + out.Client, Outcome: auditlog.OutcomeOK,
		Details: map[string]string{"job": id, "kind": out.Kind, "state": out.State}})
	if err != nil {
		c.log.Error("cancelled a job the audit log did not take", "job", id, "err", err)
	}
	return out, nil
}

// JobInfo turns a stored job into its API form.
func JobInfo(j serverdb.Job) api.JobInfo {
	info := api.JobInfo{ID: j.ID, Client: j.Client, Kind: api.JobKind(j.Kind), Repository: j.Repository, State: api.JobState(j.State),
		Scheduled: j.Scheduled, Created: j.Created, Updated: j.Updated, Start: j.Start, End: j.End, Snapshot: j.Snapshot,
		Error: j.Error, OrderedBy: j.OrderedBy, CancelRequested: j.CancelRequested}
	if len(j.Stats) > 0 {
		var st api.Stats
		if json.Unmarshal(j.Stats, &st) == nil {
			info.Stats = &st
		}
	}
	if len(j.Files) > 0 {
		_ = json.Unmarshal(j.Files, &info.Files)
	}
	if len(j.Spec) > 0 {
		var spec api.Job
		if json.Unmarshal(j.Spec, &spec) == nil {
			info.Restore = spec.Restore
		}
	}
	return info
}

// errUnknownState refuses a jobs filter on a state that does not exist.
var errUnknownState = errors.New("unknown job state")
