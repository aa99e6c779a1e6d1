package main

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/coffer-backup/coffer/internal/repair"
	"github.com/coffer-backup/coffer/internal/repository"
	"github.com/spf13/cobra"
)

func newRepairCommand(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "repair",
		Short: "Rebuild the index, or snapshots without the files whose data is lost",
		Args:  usageArgs(cobra.NoArgs),
	}
	cmd.AddCommand(newRepairIndexCommand(g), newRepairSnapshotsCommand(g))
	return cmd
}

func newRepairIndexCommand(g *globalOptions) *cobra.Command {
	var dryRun bool
	cmd := &cobra.Command{
		Use:   "index",
		Short: "Rebuild the index from the packs' own directories",
		Long: `Read the directory of every stored pack and write a new index that
replaces every index file, readable or not. Use it when check reports index
files that cannot be read or packs the index does not match. Packs whose
directory cannot be read are reported and left out of the index. Takes an
exclusive lock.`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			c, err := g.openRepo(ctx)
			if err != nil {
				return err
			}
			defer c.Close()
			unlock, err := g.lockRepo(ctx, c, "repair index", true, false)
			if err != nil {
				return err
			}
			defer unlock()
			res, err := repair.RebuildIndex(ctx, c.Repository(), dryRun, g.logf())
			if res != nil {
				if g.json {
					if jerr := printJSON(cmd.OutOrStdout(), res); jerr != nil && err == nil {
						err = jerr
					}
				} else {
					g.printRepairIndex(cmd.OutOrStdout(), res)
				}
			}
			return err
		},
	}
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "read the packs and report, write nothing")
	return cmd
}

func (g *globalOptions) printRepairIndex(w io.Writer, res *repair.IndexResult) {
	for _, b := range res.BadPacks {
		fmt.Fprintf(w, "warning: pack %s left out: %s\n", b.Pack, b.Err)
	}
	if res.DryRun {
		g.printf(w, "dry run: would index %d blobs in %d packs, replacing %d index files\n", res.Blobs, res.Packs, res.FilesBefore)
		return
	}
	g.printf(w, "indexed %d blobs in %d packs: %d index files written, %d replaced ones removed\n", res.Blobs, res.Packs, res.Written, res.Removed)
}

func newRepairSnapshotsCommand(g *globalOptions) *cobra.Command {
	var dryRun, forget bool
	cmd := &cobra.Command{
		Use:   "snapshots [ID...]",
		Short: "Write new snapshots without the files whose data is lost",
		Long: `For each snapshot (all, or those named) whose data is partly lost, write a
new snapshot, tagged "repaired", without the files whose data blobs are
missing or in packs that are missing, of the wrong size or found damaged by
check, and with unreadable directories left empty. The originals are kept
until forgotten; --forget forgets them once their replacements are written.
Run "coffer repair index" first if check reports index damage. Takes an
exclusive lock.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			c, err := g.openRepo(ctx)
			if err != nil {
				return err
			}
			defer c.Close()
			unlock, err := g.lockRepo(ctx, c, "repair snapshots", true, false)
			if err != nil {
				return err
			}
			defer unlock()
			snaps, err := c.LoadSnapshots(ctx)
			if err != nil {
				return err
			}
			if len(args) > 0 {
				if snaps, err = pickSnapshots(snaps, args); err != nil {
					return err
				}
			}
			repo := c.Repository()
			if err := repo.LoadIndex(ctx); err != nil {
				return err
			}
			if _, err := repo.VouchIndex(ctx, stateDir()); err != nil {
				return err
			}
			res, err := repair.RepairSnapshots(ctx, repo, snaps, dryRun)
			g.printRepairSnapshots(cmd.OutOrStdout(), res, dryRun)
			if err != nil || !forget || dryRun {
				return err
			}
			return forgetRepaired(ctx, cmd.OutOrStdout(), g, repo, res)
		},
	}
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "report what would be removed, write nothing")
	cmd.Flags().BoolVar(&forget, "forget", false, "forget the original snapshots once their replacements are written")
	return cmd
}

func pickSnapshots(all []*repository.Snapshot, sels []string) ([]*repository.Snapshot, error) {
	var out []*repository.Snapshot
	for _, a := range sels {
		s, err := repository.FindSnapshot(all, a, repository.SnapshotFilter{})
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

func (g *globalOptions) printRepairSnapshots(w io.Writer, res []repair.SnapshotResult, dryRun bool) {
	if g.json {
		_ = printJSON(w, res)
		return
	}
	for _, r := range res {
		if dryRun {
			g.printf(w, "snapshot %s would be replaced without:\n", r.Original.Short())
		} else {
			g.printf(w, "snapshot %s replaced by %s, without:\n", r.Original.Short(), r.New.Short())
		}
		for _, p := range r.Removed {
			g.printf(w, "  %s\n", p)
		}
	}
	if len(res) == 0 {
		g.printf(w, "no snapshot has lost data\n")
	}
}

// forgetRepaired forgets the originals that got a replacement, with a
// forget record as forget writes.
func forgetRepaired(ctx context.Context, w io.Writer, g *globalOptions, repo *repository.Repository, res []repair.SnapshotResult) error {
	var ids []repository.ID
	for _, r := range res {
		if r.New != nil {
			ids = append(ids, r.Original)
		}
	}
	if len(ids) == 0 {
		return nil
	}
	if err := repo.ForgetSnapshots(ctx, repository.Hostname(), ids); err != nil {
		return err
	}
	g.printf(w, "forgot %d original snapshots\n", len(ids))
	return nil
}

// logf returns where progress goes: stderr, unless --quiet or --json.
func (g *globalOptions) logf() func(string, ...any) {
	if g.quiet || g.json {
		return func(string, ...any) {}
	}
	return func(format string, a ...any) { fmt.Fprintf(os.Stderr, format+"\n", a...) }
}
