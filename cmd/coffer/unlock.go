package main

import (
	"github.com/spf13/cobra"
)

func newUnlockCommand(g *globalOptions) *cobra.Command {
	var all bool
	cmd := &cobra.Command{
		Use:   "unlock",
		Short: "Remove stale locks (with --remove-all, every lock)",
		Long: `Remove locks left by processes that are gone: locks of this host whose
process no longer exists, and locks not refreshed for 30 minutes. Other
commands do this automatically; --remove-all removes every lock.`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			c, err := g.openRepo(ctx)
			if err != nil {
				return err
			}
			defer c.Close()
			repo := c.Repository()
			if !all {
				removed, err := repo.RemoveStaleLocks(ctx)
				for _, l := range removed {
					g.printf(cmd.OutOrStdout(), "removed stale %s\n", l)
				}
				if err == nil && len(removed) == 0 {
					g.printf(cmd.OutOrStdout(), "no stale locks\n")
				}
				return err
			}
			locks, err := repo.LoadLocks(ctx)
			if err != nil {
				return err
			}
			for _, l := range locks {
				if err := repo.RemoveLock(ctx, l.ID); err != nil {
					return err
				}
				g.printf(cmd.OutOrStdout(), "removed %s\n", l)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&all, "remove-all", false, "remove all locks, even those of running processes")
	return cmd
}
