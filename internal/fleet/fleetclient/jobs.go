package fleetclient

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/coffer-backup/coffer/internal/fleet/api"
)

// Status returns the status of every host in the caller's scope.
func (c *Client) Status(ctx context.Context) ([]api.HostStatus, error) {
	var out []api.HostStatus
	return out, c.Do(ctx, http.MethodGet, api.StatusPath, nil, &out)
}

// JobFilter narrows Jobs; zero fields do not filter.
type JobFilter struct {
	Client string
	State  string
	// Limit bounds the listing (0: the server's default, 1000).
	Limit int
}

// Jobs lists the jobs in the caller's scope, newest first.
func (c *Client) Jobs(ctx context.Context, f JobFilter) ([]api.JobInfo, error) {
	q := url.Values{}
	if f.Client != "" {
		q.Set("client", f.Client)
	}
	if f.State != "" {
		q.Set("state", f.State)
	}
	if f.Limit > 0 {
		q.Set("limit", fmt.Sprint(f.Limit))
	}
	path := api.JobsPath
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	var out []api.JobInfo
	return out, c.Do(ctx, http.MethodGet, path, nil, &out)
}

// Job returns one job.
func (c *Client) Job(ctx context.Context, id string) (api.JobInfo, error) {
	var out api.JobInfo
	if !api.ValidID(id) {
		return out, fmt.Errorf("%w: job ID %q", ErrInvalid, id)
	}
	return out, c.Do(ctx, http.MethodGet, api.JobsPath+"/"+id, nil, &out)
}

// RunNow orders a backup, check or prune on a host and returns the queued
// job.
func (c *Client) RunNow(ctx context.Context, r api.RunNow) (api.JobInfo, error) {
	var out api.JobInfo
	return out, c.Do(ctx, http.MethodPost, api.RunNowPath, r, &out)
}

// Restore orders a restore on a host and returns the queued job.
func (c *Client) Restore(ctx context.Context, r api.RestoreOrder) (api.JobInfo, error) {
	var out api.JobInfo
	return out, c.Do(ctx, http.MethodPost, api.RestorePath, r, &out)
}

// Cancel orders job id cancelled and returns it as it stands: cancelled
// if it was still queued, else running with CancelRequested until its
// agent reports how it ended.
func (c *Client) Cancel(ctx context.Context, id string) (api.JobInfo, error) {
	var out api.JobInfo
	if !api.ValidID(id) {
		return out, fmt.Errorf("%w: job ID %q", ErrInvalid, id)
	}
	return out, c.Do(ctx, http.MethodPost, api.JobsPath+"/"+id+api.CancelSuffix, nil, &out)
}

// DefaultPollInterval is how often Wait asks for a job's state.
const DefaultPollInterval = 500 * time.Millisecond

// Wait asks for job id every interval (0: DefaultPollInterval) until it
// reaches a final state, and returns it then; seen, if not nil, gets
// every state change. It ends with ctx's error when ctx is done first.
// A request that fails is an error: Wait does not retry.
func (c *Client) Wait(ctx context.Context, id string, interval time.Duration, seen func(api.JobInfo)) (api.JobInfo, error) {
	if interval <= 0 {
		interval = DefaultPollInterval
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	var last api.JobState
	for {
		j, err := c.Job(ctx, id)
		if err != nil {
			return j, err
		}
		if j.State != last && seen != nil {
			seen(j)
		}
		last = j.State
		if j.State.Final() {
			return j, nil
		}
		select {
		case <-ctx.Done():
			return j, ctx.Err()
		case <-t.C:
		}
	}
}

// AuditFilter narrows Audit; zero fields do not filter.
type AuditFilter struct {
	Since  time.Time
	Client string
	// Limit keeps the newest entries (0: the server's default, 1000).
	Limit int
}

// Audit lists the audit log's entries the caller may read, oldest first.
func (c *Client) Audit(ctx context.Context, f AuditFilter) ([]api.AuditEntry, error) {
	q := url.Values{}
	if !f.Since.IsZero() {
		q.Set("since", f.Since.UTC().Format(time.RFC3339Nano))
	}
	if f.Client != "" {
		q.Set("client", f.Client)
	}
	if f.Limit > 0 {
		q.Set("limit", fmt.Sprint(f.Limit))
	}
	path := api.AuditPath
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	var out []api.AuditEntry
	return out, c.Do(ctx, http.MethodGet, path, nil, &out)
}
