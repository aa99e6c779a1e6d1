package main

import (
	"encoding/json"
	"fmt"

	"github.com/coffer-backup/coffer/internal/repository"
	"github.com/spf13/cobra"
)

func newCatCommand(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:       "cat config|snapshot ID",
		Short:     "Print repository objects as JSON (decrypted)",
		Args:      usageArgs(cobra.RangeArgs(1, 2)),
		ValidArgs: []string{"config", "snapshot"},
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			c, err := g.openRepo(ctx)
			if err != nil {
				return err
			}
			defer c.Close()
			repo := c.Repository()
			w := cmd.OutOrStdout()
			switch args[0] {
			case "config":
				if len(args) != 1 {
					return usageErrorf("cat config takes no ID")
				}
				return printJSON(w, repo.Config())
			case "snapshot":
				if len(args) != 2 {
					return usageErrorf("cat snapshot needs an ID")
				}
				snaps, err := c.LoadSnapshots(ctx)
				if err != nil {
					return err
				}
				s, err := repository.FindSnapshot(snaps, args[1], repository.SnapshotFilter{})
				if err != nil {
					return err
				}
				b, err := json.MarshalIndent(s, "", "  ")
				if err != nil {
					return err
				}
				_, err = fmt.Fprintln(w, string(b))
				return err
			}
			return usageErrorf("cat: unknown object type %q (want config or snapshot)", args[0])
		},
	}
	return cmd
}
