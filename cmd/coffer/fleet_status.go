package main

import (
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/coffer-backup/coffer/internal/fleet/api"
	"github.com/spf13/cobra"
)

func newFleetStatusCommand(g *globalOptions, o *fleetOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "status [--json]",
		Short: "Show every host in scope: online, last backup, next run, RPO, size, last check, agent version",
		Long: `Status shows one line per host the identity may see: whether its agent is
online (else when it was last seen), its last backup's state and time, its
next scheduled backup, its RPO state (ok; late: past its schedule's cadence;
missed: past cadence plus the policy's grace; none: no schedule), what it
stores on the server, its last check, and its agent's version, flagged
"(outdated)" when older than the server's. Times are the server's, in UTC.`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := o.client()
			if err != nil {
				return err
			}
			defer c.Close()
			st, err := c.Status(cmd.Context())
			if err != nil {
				return err
			}
			if g.json {
				out := make([]fleetHostJSON, 0, len(st))
				for _, h := range st {
					out = append(out, newFleetHostJSON(h))
				}
				return printJSON(cmd.OutOrStdout(), out)
			}
			return printFleetStatus(cmd.OutOrStdout(), st, time.Now())
		},
	}
}

func printFleetStatus(w io.Writer, st []api.HostStatus, now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CLIENT\tONLINE\tLAST BACKUP\tNEXT RUN\tRPO\tSIZE\tLAST CHECK\tAGENT")
	for _, h := range st {
		online := "yes"
		if !h.Online {
			online = "no, seen " + ago(h.LastSeen, now)
		}
		if h.Revoked {
			online = "revoked"
		}
		size := "-"
		if h.RepositoryBytes != nil {
			size = formatBytes(uint64(max(*h.RepositoryBytes, 0)))
		}
		agent := h.AgentVersion
		if agent == "" {
			agent = "-"
		} else if h.AgentOutdated {
			agent += " (outdated)"
		}
		next := "-"
		if !h.NextRun.IsZero() {
			next = h.NextRun.UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", h.Client, online, briefText(h.LastBackup), next, h.RPO, size, briefText(h.LastCheck), agent)
	}
	return tw.Flush()
}

// briefText prints a job's outcome as "succeeded 2026-12-06T02:00:00Z".
func briefText(b *api.JobBrief) string {
	if b == nil {
		return "never"
	}
	return string(b.State) + " " + b.Time.UTC().Format(time.RFC3339)
}

// ago prints how long before now t was, to the second; "never" for zero.
func ago(t, now time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return now.Sub(t).Truncate(time.Second).String() + " ago"
}
