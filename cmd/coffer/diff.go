package main

import (
	"fmt"

	"github.com/coffer-backup/coffer/internal/fsmeta"
	"github.com/coffer-backup/coffer/internal/repository"
	"github.com/coffer-backup/coffer/internal/snapdiff"
	"github.com/coffer-backup/coffer/internal/termesc"
	"github.com/spf13/cobra"
)

func newDiffCommand(g *globalOptions) *cobra.Command {
	var sf snapshotFilterFlags
	cmd := &cobra.Command{
		Use:   "diff SNAPSHOT-A SNAPSHOT-B",
		Short: "Show what changed between two snapshots",
		Long: `List the paths that differ between two snapshots: + added, - removed,
M content changed, U metadata changed only, T type changed. Directories end
in "/". Unchanged subtrees are skipped without being read. With --json, one
object per change and a final statistics object.`,
		Args: usageArgs(cobra.ExactArgs(2)),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			c, snaps, done, err := g.openReader(ctx, "diff")
			if err != nil {
				return err
			}
			defer done()
			repo := c.Repository()
			a, err := repository.FindSnapshot(snaps, args[0], sf.filter())
			if err != nil {
				return err
			}
			b, err := repository.FindSnapshot(snaps, args[1], sf.filter())
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			g.printf(w, "comparing snapshot %s to %s:\n\n", a.ID.Short(), b.ID.Short())
			stats, err := snapdiff.Diff(ctx, repo, a.Tree, b.Tree, func(c snapdiff.Change) error {
				if g.json {
					return printJSONLine(w, diffChangeJSON{MessageType: "change", Change: c})
				}
				p := c.Path
				if c.Type == fsmeta.TypeDir {
					p += "/"
				}
				if !g.quiet {
					_, err := fmt.Fprintf(w, "%c    %s\n", byte(c.Kind), termesc.Name(p))
					return err
				}
				return nil
			})
			if err != nil {
				return err
			}
			if g.json {
				return printJSONLine(w, diffStatsJSON{MessageType: "statistics", SourceSnapshot: a.ID.String(), TargetSnapshot: b.ID.String(), Stats: stats})
			}
			g.printf(w, "\nFiles:       %5d new, %5d removed, %5d changed\n", stats.Added.Files, stats.Removed.Files, stats.Modified)
			g.printf(w, "Dirs:        %5d new, %5d removed\n", stats.Added.Dirs, stats.Removed.Dirs)
			g.printf(w, "Others:      %5d new, %5d removed\n", stats.Added.Others, stats.Removed.Others)
			g.printf(w, "Metadata:    %5d changed, %d type changes\n", stats.MetadataChanged, stats.TypeChanged)
			g.printf(w, "Data Blobs:  %5d new, %5d removed\n", stats.BlobsAdded, stats.BlobsRemoved)
			g.printf(w, "Added:   %s\nRemoved: %s\n", formatBytes(stats.BytesAdded), formatBytes(stats.BytesRemoved))
			return nil
		},
	}
	sf.register(cmd.Flags())
	return cmd
}
