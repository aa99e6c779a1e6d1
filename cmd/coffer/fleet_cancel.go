package main

import (
	"github.com/coffer-backup/coffer/internal/fleet/api"
	"github.com/spf13/cobra"
)

func newFleetCancelCommand(g *globalOptions, o *fleetOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "cancel JOB",
		Short: "Cancel a queued or running job",
		Long: `Cancel stops a job: one still queued is cancelled at once; a running one is
told to its agent, which stops it (releasing its locks) and reports it
cancelled. A job that has ended cannot be cancelled. fleet jobs lists the
IDs; fleet jobs --client C --state cancelled shows the outcome.`,
		Args: usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !api.ValidID(args[0]) {
				return usageErrorf("invalid job ID %q (32 hex digits, as fleet jobs prints)", args[0])
			}
			c, err := o.client()
			if err != nil {
				return err
			}
			defer c.Close()
			j, err := c.Cancel(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if g.json {
				return printJSON(cmd.OutOrStdout(), fleetJobJSON(j))
			}
			if j.State == api.StateCancelled {
				g.printf(cmd.OutOrStdout(), "job %s cancelled\n", j.ID)
			} else {
				g.printf(cmd.OutOrStdout(), "job %s (%s on %s): cancellation sent to its agent\n", j.ID, j.State, j.Client)
			}
			return nil
		},
	}
}
