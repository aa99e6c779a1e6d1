package main

import (
	"path"

	"github.com/coffer-backup/coffer/internal/fleet/api"
	"github.com/spf13/cobra"
)

func newFleetRestoreCommand(g *globalOptions, o *fleetOptions) *cobra.Command {
	var (
		req  api.RestoreOrder
		wait bool
	)
	cmd := &cobra.Command{
		Use:   "restore CLIENT --snapshot ID|latest --target DIR [--include P...] [--repository R] [--wait]",
		Short: "Order a restore on a host: its agent decrypts and writes the files there",
		Long: `Restore orders the host's agent to restore a snapshot into DIR on that host:
the agent decrypts and writes locally, and the operator never sees the
data. DIR must be a clean absolute path under the policy's restore root
(--restore-root of fleet policy set, default /var/restore); the server
refuses anything else before it is queued, and the agent checks again
(restoring elsewhere needs the agent started with --allow-restore-in-place).

With --wait it follows the job until it ends and exits with its outcome,
as fleet run-now --wait does.`,
		Args: usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			req.Client = args[0]
			if !api.ValidName(req.Client) {
				return usageErrorf("invalid client name %q", req.Client)
			}
			if req.Snapshot == "" {
				return usageErrorf("--snapshot is required (an ID, a unique prefix, or latest)")
			}
			if !path.IsAbs(req.Target) || path.Clean(req.Target) != req.Target {
				return usageErrorf("--target %q: a clean absolute path on the host, under its restore root", req.Target)
			}
			c, err := o.client()
			if err != nil {
				return err
			}
			defer c.Close()
			j, err := c.Restore(cmd.Context(), req)
			if err != nil {
				return err
			}
			return g.ordered(cmd.Context(), cmd.OutOrStdout(), c, j, wait)
		},
	}
	f := cmd.Flags()
	f.StringVar(&req.Snapshot, "snapshot", "", "the snapshot: an ID, a unique prefix, or latest")
	f.StringVar(&req.Target, "target", "", "the directory on the host to restore into, under the policy's restore root")
	f.StringArrayVarP(&req.Include, "include", "i", nil, "restore only paths matching a pattern (repeatable)")
	f.StringVar(&req.Repository, "repository", "", "the policy's repository (default: its first)")
	f.BoolVar(&wait, "wait", false, "wait for the job to end; the exit status is its outcome")
	return cmd
}
