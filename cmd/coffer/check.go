package main

import (
	"fmt"
	"io"
	"os"

	"github.com/coffer-backup/coffer/internal/check"
	"github.com/coffer-backup/coffer/internal/termesc"
	"github.com/spf13/cobra"
)

func newCheckCommand(g *globalOptions) *cobra.Command {
	var readData bool
	var subset string
	cmd := &cobra.Command{
		Use:   "check",
		Short: "Verify the repository's structure and, with --read-data, all data",
		Long: `Check loads every index file, compares the index with the packs in storage,
loads every snapshot and every tree, and reports blobs that are missing. With
--read-data it reads every pack and verifies each blob's authentication and
keyed hash; --read-data-subset reads a random percentage ("10%") or group n of
m ("2/5") of the packs. Damage is reported with the snapshots and files it
affects. Check never modifies the repository.

Exit status 1 means damage was found.`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			var o check.Options
			o.ReadData = readData
			if subset != "" {
				s, err := check.ParseSubset(subset)
				if err != nil {
					return usageErrorf("%v", err)
				}
				o.Subset, o.ReadData = s, true
			}
			if !g.quiet && !g.json {
				o.Log = func(format string, a ...any) { fmt.Fprintf(os.Stderr, format+"\n", a...) }
			}
			c, err := g.openRepo(ctx)
			if err != nil {
				return err
			}
			defer c.Close()
			res, err := c.Check(ctx, o, g.noLock)
			if err != nil {
				return err
			}
			if g.json {
				if err := printJSONLine(cmd.OutOrStdout(), checkSummaryJSON{MessageType: msgSummary, Result: res}); err != nil {
					return err
				}
			} else {
				g.printCheckResult(cmd.OutOrStdout(), res)
			}
			return res.Err()
		},
	}
	f := cmd.Flags()
	f.BoolVar(&readData, "read-data", false, "read all packs and verify every blob")
	f.StringVar(&subset, "read-data-subset", "", `read only a subset of the packs: "N%" (random), a size ("500M": random packs up to it) or "n/m" (group n of m)`)
	return cmd
}

func (g *globalOptions) printAffected(w io.Writer, aff []check.AffectedFile) {
	const limit = 20
	for i, a := range aff {
		if i == limit && !g.quiet {
			fmt.Fprintf(w, "      ... and %d more (see --json)\n", len(aff)-limit)
			return
		}
		fmt.Fprintf(w, "      snapshot %s: %s\n", a.Snapshot.Short(), termesc.Name(a.Path))
	}
}

func (g *globalOptions) printCheckResult(w io.Writer, r *check.Result) {
	g.printf(w, "checked %d index files, %d packs, %d snapshots, %d trees, %d data blobs", r.IndexFiles, r.Packs, r.Snapshots, r.Trees, r.DataBlobs)
	if r.PacksRead > 0 {
		g.printf(w, "; read %d packs", r.PacksRead)
	}
	g.printf(w, "\n")
	for _, x := range r.Warnings {
		g.printf(w, "warning: %s\n", x)
	}
	if n := len(r.UnindexedPacks); n > 0 {
		g.printf(w, "warning: %d packs are in no index (left by an interrupted backup, or a backup in progress); prune removes them\n", n)
	}
	// Errors are printed even with --quiet.
	for _, e := range r.ObjectErrors {
		fmt.Fprintf(w, "error: %s/%s cannot be read: %s\n", e.Kind, e.Name, e.Err)
	}
	for _, group := range []struct {
		list []check.PackProblem
	}{{r.MissingPacks}, {r.SizeMismatches}, {r.DamagedPacks}} {
		for _, p := range group.list {
			fmt.Fprintf(w, "error: pack %s: %s\n", p.Pack, p.Problem)
			if len(p.Affected) > 0 {
				fmt.Fprintf(w, "    data lost in:\n")
				g.printAffected(w, p.Affected)
			}
		}
	}
	for _, b := range r.LostBlobs {
		fmt.Fprintf(w, "error: %s blob %s: %s\n", b.TypeName, b.ID, b.Problem)
		g.printAffected(w, b.Affected)
	}
	if !r.Damaged() {
		g.printf(w, "no errors were found\n")
	}
}
