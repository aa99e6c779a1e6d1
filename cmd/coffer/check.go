package main

import (
	"fmt"
	"io"
	"os"
	"time"

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

Progress goes to stderr: each phase (load index, list packs, walk snapshots,
read data) ends with a line of its counts; between them a progress line is
redrawn on a terminal, or printed every 10s (COFFER_PROGRESS_INTERVAL)
elsewhere. With --json, progress is JSON lines on stdout (docs/json.md).

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
			c, err := g.openRepo(ctx)
			if err != nil {
				return err
			}
			defer c.Close()
			stop := g.startCheckProgress(cmd.OutOrStdout(), &o)
			res, err := c.Check(ctx, o, g.noLock)
			stop()
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

// startCheckProgress sets o's progress hooks and starts showing them: with
// --json, a "status" line every second and a "phase" line as each phase
// ends; otherwise, on stderr, the progress line (redrawn on a terminal,
// a plain line every 10s or COFFER_PROGRESS_INTERVAL elsewhere) and one
// line with the final counts of each phase. It returns the function that
// stops the display.
func (g *globalOptions) startCheckProgress(stdout io.Writer, o *check.Options) func() {
	if g.quiet {
		return func() {}
	}
	start := time.Now()
	o.Progress = &check.Progress{}
	if g.json {
		o.PhaseDone = func(s check.Status) { _ = printJSONLine(stdout, checkStatus(msgPhase, start, s)) }
		return g.startJSONStatus(stdout, func() any { return checkStatus(msgStatus, start, o.Progress.Status()) })
	}
	clear := ""
	if isTerminal(os.Stderr) {
		clear = "\r\033[K"
	}
	o.PhaseDone = func(s check.Status) { fmt.Fprintf(os.Stderr, "%s%s\n", clear, checkProgressLine(start, s)) }
	return g.startProgress(true, func() string { return checkProgressLine(start, o.Progress.Status()) })
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
