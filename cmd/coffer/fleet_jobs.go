package main

import (
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/coffer-backup/coffer/internal/fleet/api"
	"github.com/coffer-backup/coffer/internal/fleet/fleetclient"
	"github.com/spf13/cobra"
)

func newFleetJobsCommand(g *globalOptions, o *fleetOptions) *cobra.Command {
	var f fleetclient.JobFilter
	cmd := &cobra.Command{
		Use:   "jobs [--client C] [--state S] [--limit N] [--json]",
		Short: "List the jobs of the hosts in scope, newest first",
		Long: `Jobs lists scheduled and ordered jobs, newest first: their ID (for fleet
cancel), host, kind (backup, check, prune, restore), repository, state
(queued, running, succeeded, warning, failed, skipped, missed, cancelled),
start, end and error. --client and --state narrow the list; --limit bounds
it (default 1000, at most 10000).`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if f.Client != "" && !api.ValidName(f.Client) {
				return usageErrorf("invalid --client %q", f.Client)
			}
			if f.Limit < 0 || f.Limit > 10000 {
				return usageErrorf("--limit must be between 1 and 10000")
			}
			c, err := o.client()
			if err != nil {
				return err
			}
			defer c.Close()
			jobs, err := c.Jobs(cmd.Context(), f)
			if err != nil {
				return err
			}
			if g.json {
				return printJSON(cmd.OutOrStdout(), fleetJobsJSON(jobs))
			}
			return printFleetJobs(cmd.OutOrStdout(), jobs)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.Client, "client", "", "only this host's jobs")
	fl.StringVar(&f.State, "state", "", "only jobs in this state (queued, running, succeeded, warning, failed, skipped, missed, cancelled)")
	fl.IntVar(&f.Limit, "limit", 0, "at most this many jobs (default 1000)")
	return cmd
}

func printFleetJobs(w io.Writer, jobs []api.JobInfo) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tCLIENT\tKIND\tREPOSITORY\tSTATE\tSTART\tEND\tERROR")
	for _, j := range jobs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", j.ID, j.Client, j.Kind, j.Repository, j.State,
			timeText(j.Start), timeText(j.End), j.Error)
	}
	return tw.Flush()
}

func timeText(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}
