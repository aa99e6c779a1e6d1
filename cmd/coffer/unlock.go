package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/coffer-backup/coffer/internal/repository"
	"github.com/spf13/cobra"
)

func newUnlockCommand(g *globalOptions) *cobra.Command {
	var all bool
	cmd := &cobra.Command{
		Use:   "unlock",
		Short: "Remove stale locks (with --remove-all, every lock)",
		Long: `Remove locks left by processes that are gone: locks of this host whose
process no longer exists, locks not refreshed for 30 minutes, and lock
objects that cannot be read. Other commands remove stale locks
automatically; --remove-all removes every lock.

A lock of another host is stale only 30 minutes after its last refresh:
when that host is gone for good, --remove-all removes its lock at once.
Exit status 11 means locks remain that block other commands.`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			c, err := g.openRepo(ctx)
			if err != nil {
				return err
			}
			defer c.Close()
			repo := c.Repository()
			if all {
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
			}
			removed, err := repo.RemoveStaleLocks(ctx, true)
			for _, l := range removed {
				g.printf(cmd.OutOrStdout(), "removed stale %s\n", l)
			}
			if err != nil {
				return err
			}
			left, err := repo.LoadLocks(ctx)
			if err != nil {
				return err
			}
			if len(left) == 0 {
				if len(removed) == 0 {
					g.printf(cmd.OutOrStdout(), "no stale locks\n")
				}
				return nil
			}
			return remainingLocks(left)
		},
	}
	cmd.Flags().BoolVar(&all, "remove-all", false, "remove all locks, even those of running processes")
	return cmd
}

// remainingLocks is unlock's error for locks it left in place: each one,
// when it goes stale, and how to remove it now.
func remainingLocks(left []*repository.LockInfo) error {
	now, host := time.Now(), repository.Hostname()
	parts := make([]string, len(left))
	for i, l := range left {
		parts[i] = fmt.Sprintf("%s: %s", l, l.StaleHint(now, host))
	}
	return fmt.Errorf("%w: %d locks are not stale and were kept: %s", repository.ErrLocked, len(left), strings.Join(parts, "; "))
}
