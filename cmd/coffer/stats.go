package main

import (
	"github.com/coffer-backup/coffer/internal/maintenance"
	"github.com/coffer-backup/coffer/internal/repository"
	"github.com/spf13/cobra"
)

func newStatsCommand(g *globalOptions) *cobra.Command {
	var sf snapshotFilterFlags
	var mode string
	cmd := &cobra.Command{
		Use:   "stats [SNAPSHOT...]",
		Short: "Show how much the snapshots hold and how much they occupy",
		Long: `Stats counts the given snapshots (default: all, or those --host, --tag and
--path select). --mode restore-size (default) shows the files and bytes a
restore of each would write, every snapshot counted in full; --mode raw-data
shows the unique blobs they reference, their plaintext size, their stored
(compressed, encrypted) size and the compression ratio. --json prints both.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			if mode != "restore-size" && mode != "raw-data" {
				return usageErrorf("--mode must be restore-size or raw-data, not %q", mode)
			}
			c, snaps, done, err := g.openReader(ctx, "stats")
			if err != nil {
				return err
			}
			defer done()
			repo := c.Repository()
			var sel []*repository.Snapshot
			if len(args) > 0 {
				seen := map[repository.ID]bool{}
				for _, a := range args {
					s, err := repository.FindSnapshot(snaps, a, sf.filter())
					if err != nil {
						return err
					}
					if !seen[s.ID] {
						seen[s.ID] = true
						sel = append(sel, s)
					}
				}
			} else {
				f := sf.filter()
				for _, s := range snaps {
					if f.Match(s) {
						sel = append(sel, s)
					}
				}
			}
			st, err := maintenance.Stats(ctx, repo, sel)
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if g.json {
				return printJSON(w, statsJSON{Mode: mode, RepoStats: st})
			}
			g.printf(w, "Stats in %s mode:\n", mode)
			g.printf(w, "  Snapshots processed:  %d\n", st.Snapshots)
			if mode == "restore-size" {
				g.printf(w, "  Total file count:     %d\n", st.Files)
				g.printf(w, "  Total size:           %s\n", formatBytes(st.RestoreSize))
				return nil
			}
			g.printf(w, "  Total blob count:     %d (%d data, %d tree)\n", st.DataBlobs+st.TreeBlobs, st.DataBlobs, st.TreeBlobs)
			g.printf(w, "  Total uncompressed:   %s\n", formatBytes(st.RawSize))
			g.printf(w, "  Total stored size:    %s\n", formatBytes(st.StoredSize))
			g.printf(w, "  Compression ratio:    %.2fx\n", st.CompressionRatio)
			if st.MissingBlobs > 0 {
				warnf("%d referenced blobs are not in the index; run coffer check", st.MissingBlobs)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&mode, "mode", "restore-size", "restore-size or raw-data")
	sf.register(cmd.Flags())
	return cmd
}
