package main

import (
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/coffer-backup/coffer/internal/repository"
	"github.com/coffer-backup/coffer/internal/termesc"
	"github.com/spf13/cobra"
)

func newSnapshotsCommand(g *globalOptions) *cobra.Command {
	var sf snapshotFilterFlags
	var latest int
	cmd := &cobra.Command{
		Use:   "snapshots",
		Short: "List snapshots",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			c, err := g.openRepo(ctx)
			if err != nil {
				return err
			}
			defer c.Close()
			unlock, err := g.lockRepo(ctx, c, "snapshots", false, true)
			if err != nil {
				return err
			}
			defer unlock()
			snaps, err := c.LoadSnapshots(ctx)
			if err != nil {
				return err
			}
			f := sf.filter()
			if latest > 0 {
				// As restic: the n newest of what the filter selects.
				snaps, _ = repository.SelectSnapshots(snaps, nil, f)
				snaps = repository.LatestPerGroup(snaps, latest)
			}
			out := []snapshotJSON{}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			if !g.json {
				fmt.Fprintln(tw, "ID\tTime\tHost\tTags\tPaths")
			}
			n := 0
			for _, s := range snaps {
				if !f.Match(s) {
					continue
				}
				n++
				if g.json {
					j := snapshotJSON{ID: s.ID.String(), ShortID: s.ID.Short(), Time: s.Time.Format("2006-01-02T15:04:05.999999999Z07:00"),
						Hostname: s.Hostname, Username: s.Username, Paths: s.Paths, Tags: s.Tags, Tree: s.Tree.String()}
					if s.Parent != nil {
						j.Parent = s.Parent.String()
					}
					if s.Original != nil {
						j.Original = s.Original.String()
					}
					out = append(out, j)
					continue
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", s.ID.Short(), s.Time.Local().Format("2006-01-02 15:04:05"), s.Hostname,
					strings.Join(s.Tags, ","), termesc.Name(strings.Join(s.Paths, ", ")))
			}
			if g.json {
				return printJSON(cmd.OutOrStdout(), out)
			}
			if !g.quiet {
				if err := tw.Flush(); err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%d snapshots\n", n)
			}
			return nil
		},
	}
	cmd.Flags().IntVar(&latest, "latest", 0, "only the n newest snapshots of each host and path set")
	sf.register(cmd.Flags())
	return cmd
}
