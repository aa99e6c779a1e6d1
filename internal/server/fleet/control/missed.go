package control

import (
	"context"
	"errors"
	"time"

	"github.com/coffer-backup/coffer/internal/fleet/api"
	"github.com/coffer-backup/coffer/internal/serverdb"
)

// DefaultMissedInterval is how often WatchMissed looks for missed backups.
const DefaultMissedInterval = 10 * time.Second

// WatchMissed runs CheckMissed and CheckPrunes every interval (DefaultMissedInterval if
// not positive) until ctx is done.
func (c *Control) WatchMissed(ctx context.Context, interval time.Duration) {
	if interval <= 0 {
		interval = DefaultMissedInterval
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if _, err := c.CheckMissed(ctx); err != nil && ctx.Err() == nil {
			c.log.Error("missed-backup check", "err", err)
		}
		if _, err := c.CheckPrunes(ctx); err != nil && ctx.Err() == nil {
			c.log.Error("prune schedule check", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// CheckMissed records a missed backup for every repository of every
// host's policy (revoked hosts aside) that has had no successful backup
// within its cadence plus grace after the later of its last success and
// when the server first saw it in the policy, on the server's clock: a job
// in state missed, and an Event to Notify. A repository still without
// success one cadence after its last missed record is missed again. A host
// that never connected is missed too. It returns how many it recorded.
func (c *Control) CheckMissed(ctx context.Context) (int, error) {
	clients, err := c.cfg.Store.Clients(ctx)
	if err != nil {
		return 0, err
	}
	watches, err := c.cfg.Store.Watches(ctx)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, cl := range clients {
		if cl.Revoked() {
			continue
		}
		k, err := c.checkHost(ctx, cl.Name, watches[cl.Name])
		n += k
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

func (c *Control) checkHost(ctx context.Context, client string, watch map[string]serverdb.Watch) (int, error) {
	cp, ok, err := c.policyOf(ctx, client)
	if err != nil {
		c.log.Warn("missed-backup check: read a host's policy", "client", client, "err", err)
		return 0, nil
	}
	if !ok {
		return 0, nil
	}
	now := c.now()
	n := 0
	for _, repo := range cp.policy.Repositories {
		sched, timing, ok := utcTiming(repo)
		if !ok {
			continue
		}
		w, watched := watch[repo.Name]
		if !watched {
			if err := c.cfg.Store.StartWatch(ctx, client, repo.Name, now); err != nil {
				return n, err
			}
			continue
		}
		success, err := c.brief(ctx, client, api.KindBackup, repo.Name, successStates)
		if err != nil {
			return n, err
		}
		var lastSuccess time.Time
		if success != nil {
			lastSuccess = success.Time
		}
		deadline := timing.MissedAt(sched, lastSuccess, w.Since)
		if !w.LastMissed.Before(deadline) {
			deadline = w.LastMissed.Add(timing.Cadence(sched))
		}
		if deadline.IsZero() || !now.After(deadline) {
			continue
		}
		job := serverdb.Job{ID: newID(), Client: client, Kind: string(api.KindBackup), Repository: repo.Name, State: string(api.StateMissed),
			Scheduled: true, Created: now.UTC(), Updated: now.UTC(), End: deadline.UTC(), Error: missedDetail(client, repo.Name, lastSuccess, deadline), ServerSet: true}
		err = c.cfg.Store.RecordMissed(ctx, job, deadline)
		if errors.Is(err, serverdb.ErrConflict) {
			continue // another check recorded it
		}
		if err != nil {
			return n, err
		}
		n++
		c.log.Warn("backup missed", "client", client, "repository", repo.Name, "deadline", deadline.UTC())
		if c.cfg.Notify != nil {
			c.cfg.Notify(Event{Time: now, Client: client, Job: job, Detail: job.Error})
		}
	}
	return n, nil
}
