package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/coffer-backup/coffer/internal/fleet/api"
	"github.com/coffer-backup/coffer/internal/fleet/fleetclient"
)

// serverJobs asks the server, as the fleet's admin, for its jobs and
// returns how many scheduled backups of these hosts succeeded. It prints
// their delays by the server's stamp: the job's created time (when the
// running report arrived) minus the time it was scheduled for.
func serverJobs(ctx context.Context, adminDir, addr string, scheduled map[string]time.Time) (int, error) {
	c, err := fleetclient.Open(fleetclient.Options{Dir: adminDir, Server: addr})
	if err != nil {
		return 0, err
	}
	defer c.Close()
	var jobs []api.JobInfo
	if err := c.Do(ctx, http.MethodGet, api.JobsPath+"?state=succeeded&limit=10000", nil, &jobs); err != nil {
		return 0, fmt.Errorf("list jobs: %w", err)
	}
	var delays []time.Duration
	for _, j := range jobs {
		at, ok := scheduled[j.Client]
		if !ok || j.Kind != api.KindBackup || !j.Scheduled {
			continue
		}
		delays = append(delays, j.Created.Sub(at))
	}
	fmt.Fprintf(os.Stderr, "fleetsim: server side: %d succeeded scheduled backups; arrived (created) p50 %s p99 %s max %s after the scheduled time\n",
		len(delays), percentile(delays, 50), percentile(delays, 99), percentile(delays, 100))
	return len(delays), nil
}
