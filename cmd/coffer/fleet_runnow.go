package main

import (
	"context"
	"fmt"
	"io"

	"github.com/coffer-backup/coffer/internal/fleet/api"
	"github.com/coffer-backup/coffer/internal/fleet/fleetclient"
	"github.com/spf13/cobra"
)

func newFleetRunNowCommand(g *globalOptions, o *fleetOptions) *cobra.Command {
	var (
		req  api.RunNow
		kind string
		wait bool
	)
	cmd := &cobra.Command{
		Use:   "run-now CLIENT [--kind backup|check|prune] [--repository R] [--read-data-subset S] [--wait]",
		Short: "Order a backup, check or prune on a host now",
		Long: `Run-now queues a job on the host and pushes it to its agent if it is online
(else it is sent when the agent connects), and prints the job's ID. The
repository is the policy's first unless --repository names another.

With --wait it follows the job until it ends and exits with its outcome:
0 succeeded, 3 warning, 15 failed (or skipped), 16 cancelled (see
docs/exit-codes.md). Interrupting the wait leaves the job running; fleet
cancel stops it.`,
		Args: usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			req.Client, req.Kind = args[0], api.JobKind(kind)
			if !api.ValidName(req.Client) {
				return usageErrorf("invalid client name %q", req.Client)
			}
			switch req.Kind {
			case api.KindBackup, api.KindCheck, api.KindPrune:
			default:
				return usageErrorf("--kind %q: backup, check or prune", kind)
			}
			if req.ReadDataSubset != "" && req.Kind != api.KindCheck {
				return usageErrorf("--read-data-subset is for --kind check")
			}
			c, err := o.client()
			if err != nil {
				return err
			}
			defer c.Close()
			j, err := c.RunNow(cmd.Context(), req)
			if err != nil {
				return err
			}
			return g.ordered(cmd.Context(), cmd.OutOrStdout(), c, j, wait)
		},
	}
	f := cmd.Flags()
	f.StringVar(&kind, "kind", string(api.KindBackup), "backup, check or prune")
	f.StringVar(&req.Repository, "repository", "", "the policy's repository (default: its first)")
	f.StringVar(&req.ReadDataSubset, "read-data-subset", "", `a check job's --read-data-subset: "N%", a size or "n/m"`)
	f.BoolVar(&wait, "wait", false, "wait for the job to end; the exit status is its outcome")
	return cmd
}

// ordered prints a job just ordered and, with wait, follows it to its end
// and returns the error its outcome maps to (exitcodes.go).
func (g *globalOptions) ordered(ctx context.Context, w io.Writer, c *fleetclient.Client, j api.JobInfo, wait bool) error {
	if !wait {
		if g.json {
			return printJSON(w, fleetJobJSON(j))
		}
		fmt.Fprintln(w, j.ID)
		g.note("%s job %s queued on %s (repository %s)", j.Kind, j.ID, j.Client, j.Repository)
		return nil
	}
	g.note("%s job %s queued on %s (repository %s); waiting for it to end", j.Kind, j.ID, j.Client, j.Repository)
	j, err := c.Wait(ctx, j.ID, 0, func(s api.JobInfo) {
		if !s.State.Final() {
			g.note("job %s: %s", s.ID, s.State)
		}
	})
	if err != nil {
		return fmt.Errorf("wait for job %s: %w", j.ID, err)
	}
	if g.json {
		if err := printJSON(w, fleetJobJSON(j)); err != nil {
			return err
		}
	} else {
		g.printf(w, "job %s %s%s\n", j.ID, j.State, jobDetail(j))
	}
	return jobOutcome(j)
}

// jobDetail is what a finished job adds to its line: the snapshot it
// made, or its error.
func jobDetail(j api.JobInfo) string {
	switch {
	case j.Error != "":
		return ": " + j.Error
	case j.Snapshot != "":
		return ", snapshot " + j.Snapshot
	}
	return ""
}

// jobOutcome maps a final state to the error its exit status comes from.
func jobOutcome(j api.JobInfo) error {
	switch j.State {
	case api.StateSucceeded:
		return nil
	case api.StateWarning:
		return fmt.Errorf("job %s: %w: %s", j.ID, errJobWarning, j.Error)
	case api.StateCancelled:
		return fmt.Errorf("job %s: %w: %s", j.ID, errJobCancelled, j.Error)
	}
	return fmt.Errorf("job %s: %w: it ended %s: %s", j.ID, errJobFailed, j.State, j.Error)
}
