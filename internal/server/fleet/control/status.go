package control

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/coffer-backup/coffer/internal/fleet/api"
	"github.com/coffer-backup/coffer/internal/fleet/policy"
	"github.com/coffer-backup/coffer/internal/schedule"
	"github.com/coffer-backup/coffer/internal/serverdb"
)

// States a status line reads its last backup and check from.
var (
	endedStates   = []string{string(api.StateSucceeded), string(api.StateWarning), string(api.StateFailed), string(api.StateSkipped), string(api.StateCancelled)}
	successStates = []string{string(api.StateSucceeded), string(api.StateWarning)}
	// startedStates are those of a job that ran or runs (not missed, not
	// still queued).
	startedStates = append([]string{string(api.StateRunning)}, endedStates...)
)

// Status returns the status of every enrolled host for which sees returns
// true (nil: all), ordered by name. Times are the server's clock; next
// runs and RPO are computed in UTC, since the server does not know a
// host's time zone.
func (c *Control) Status(ctx context.Context, sees func(client string) bool) ([]api.HostStatus, error) {
	clients, err := c.cfg.Store.Clients(ctx)
	if err != nil {
		return nil, err
	}
	agents, err := c.cfg.Store.Agents(ctx)
	if err != nil {
		return nil, err
	}
	watches, err := c.cfg.Store.Watches(ctx)
	if err != nil {
		return nil, err
	}
	now := c.now()
	out := []api.HostStatus{}
	for _, cl := range clients {
		if sees != nil && !sees(cl.Name) {
			continue
		}
		hs, err := c.hostStatus(ctx, cl, agents[cl.Name], watches[cl.Name], now)
		if err != nil {
			return nil, err
		}
		out = append(out, hs)
	}
	return out, nil
}

func (c *Control) hostStatus(ctx context.Context, cl serverdb.Client, ag serverdb.Agent, watch map[string]serverdb.Watch, now time.Time) (api.HostStatus, error) {
	hs := api.HostStatus{Client: cl.Name, LastSeen: cl.LastContact, Revoked: cl.Revoked(), RPO: api.RPONone,
		AgentVersion: ag.Version, ReportsDropped: ag.Dropped}
	if _, ok := c.hub.Online(cl.Name); ok {
		hs.Online, hs.LastSeen = true, now.UTC()
	}
	hs.AgentOutdated = ag.Version != "" && olderVersion(ag.Version, c.cfg.Version)
	if c.cfg.Usage != nil {
		if n, ok := c.cfg.Usage(cl.Name); ok {
			hs.RepositoryBytes = &n
		}
	}
	var err error
	if hs.LastBackup, err = c.brief(ctx, cl.Name, api.KindBackup, "", endedStates); err != nil {
		return hs, err
	}
	if hs.LastSuccess, err = c.brief(ctx, cl.Name, api.KindBackup, "", successStates); err != nil {
		return hs, err
	}
	if hs.LastCheck, err = c.brief(ctx, cl.Name, api.KindCheck, "", append(endedStates, string(api.StateMissed))); err != nil {
		return hs, err
	}
	cp, ok, err := c.policyOf(ctx, cl.Name)
	if err != nil {
		c.log.Warn("status: read a host's policy", "client", cl.Name, "err", err)
	}
	if !ok {
		return hs, nil
	}
	hs.PolicyGeneration = cp.generation
	for _, repo := range cp.policy.Repositories {
		if err := c.repoStatus(ctx, &hs, cl.Name, repo, watch[repo.Name], now); err != nil {
			return hs, err
		}
	}
	return hs, nil
}

// repoStatus folds one repository's next run and RPO into hs: the
// earliest next run and the worst RPO of the host's repositories.
func (c *Control) repoStatus(ctx context.Context, hs *api.HostStatus, client string, repo policy.Repository, w serverdb.Watch, now time.Time) error {
	sched, timing, ok := utcTiming(repo)
	if !ok {
		return nil
	}
	success, err := c.brief(ctx, client, api.KindBackup, repo.Name, successStates)
	if err != nil {
		return err
	}
	started, err := c.last(ctx, client, api.KindBackup, repo.Name, startedStates)
	if err != nil {
		return err
	}
	var lastSuccess, lastStart time.Time
	if success != nil {
		lastSuccess = success.Time
	}
	if started != nil {
		lastStart = started.Start
	}
	since := w.Since
	if since.IsZero() {
		since = now // not watched yet: the watch starts at the next check
	}
	next := timing.NextRun(sched, client, lastStart, now)
	if !next.IsZero() && (hs.NextRun.IsZero() || next.Before(hs.NextRun)) {
		hs.NextRun = next.UTC()
	}
	if r := rpoOf(sched, timing, lastSuccess, since, now); rpoRank(r) > rpoRank(hs.RPO) {
		hs.RPO = r
	}
	return nil
}

// utcTiming returns repo's schedule and timing in UTC, the server's view
// of them; ok is false for a repository without a schedule (a policy the
// server signed always parses).
func utcTiming(repo policy.Repository) (schedule.Schedule, schedule.Timing, bool) {
	sched, timing, err := repo.Timing()
	if err != nil || sched.IsZero() {
		return schedule.Schedule{}, schedule.Timing{}, false
	}
	return sched.In(time.UTC), timing.In(time.UTC), true
}

// rpoOf says whether a repository is ok, late (past its cadence since the
// later of its last success and since) or missed (past cadence + grace).
func rpoOf(s schedule.Schedule, t schedule.Timing, lastSuccess, since, now time.Time) string {
	if t.Missed(s, lastSuccess, since, now) {
		return api.RPOMissed
	}
	ref := lastSuccess
	if since.After(ref) {
		ref = since
	}
	if now.After(ref.Add(t.Cadence(s))) {
		return api.RPOLate
	}
	return api.RPOOk
}

func rpoRank(r string) int {
	switch r {
	case api.RPOOk:
		return 1
	case api.RPOLate:
		return 2
	case api.RPOMissed:
		return 3
	}
	return 0
}

// last returns client's newest job of kind (in repository, if not empty)
// in one of states (nil: any), or nil.
func (c *Control) last(ctx context.Context, client string, kind api.JobKind, repository string, states []string) (*serverdb.Job, error) {
	jobs, err := c.cfg.Store.Jobs(ctx, serverdb.JobFilter{Client: client, Kind: string(kind), Repository: repository, States: states, Limit: 1})
	if err != nil || len(jobs) == 0 {
		return nil, err
	}
	return &jobs[0], nil
}

// brief is last as a status shows it.
func (c *Control) brief(ctx context.Context, client string, kind api.JobKind, repository string, states []string) (*api.JobBrief, error) {
	j, err := c.last(ctx, client, kind, repository, states)
	if err != nil || j == nil {
		return nil, err
	}
	at := j.End
	if at.IsZero() {
		at = j.Updated
	}
	return &api.JobBrief{ID: j.ID, Time: at, State: api.JobState(j.State), Snapshot: j.Snapshot}, nil
}

// olderVersion reports whether version a is older than b, comparing their
// dotted numeric parts (a leading "v" and a "-suffix" ignored, a missing
// part 0). Versions it cannot read are never flagged.
func olderVersion(a, b string) bool {
	pa, oka := versionParts(a)
	pb, okb := versionParts(b)
	if !oka || !okb {
		return false
	}
	for i := range max(len(pa), len(pb)) {
		x, y := part(pa, i), part(pb, i)
		if x != y {
			return x < y
		}
	}
	return false
}

func versionParts(v string) ([]int, bool) {
	v = strings.TrimPrefix(v, "v")
	v, _, _ = strings.Cut(v, "-")
	v, _, _ = strings.Cut(v, "+")
	if v == "" {
		return nil, false
	}
	var out []int
	for _, f := range strings.Split(v, ".") {
		n, err := strconv.Atoi(f)
		if err != nil || n < 0 {
			return nil, false
		}
		out = append(out, n)
	}
	return out, true
}

func part(p []int, i int) int {
	if i < len(p) {
		return p[i]
	}
	return 0
}

// missedDetail says why a repository's backup counts as missed.
func missedDetail(client, repo string, lastSuccess time.Time, deadline time.Time) string {
	if lastSuccess.IsZero() {
		return fmt.Sprintf("missed: %s (%s) has no successful backup, due by %s", client, repo, deadline.UTC().Format(time.RFC3339))
	}
	return fmt.Sprintf("missed: %s (%s) has no successful backup since %s, due by %s", client, repo,
		lastSuccess.UTC().Format(time.RFC3339), deadline.UTC().Format(time.RFC3339))
}
