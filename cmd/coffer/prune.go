package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/coffer-backup/coffer/internal/client"
	"github.com/coffer-backup/coffer/internal/maintenance"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// pruneFlags are prune's options, shared with `forget --prune`.
type pruneFlags struct {
	dryRun          bool
	maxUnused       string
	safetyMargin    time.Duration
	clockSkew       time.Duration
	rewriteOldTerms bool
}

func (p *pruneFlags) register(f *pflag.FlagSet, withDryRun bool) {
	if withDryRun {
		f.BoolVarP(&p.dryRun, "dry-run", "n", false, "only show what would be removed and repacked")
	}
	f.StringVar(&p.maxUnused, "max-unused", "10%", `unused data tolerated in packs that still hold used data before they are repacked: "N%", a size ("500M") or "unlimited"`)
	f.DurationVar(&p.safetyMargin, "safety-margin", maintenance.DefaultSafetyMargin, "packs no index names are deleted only after being condemned this long")
	f.DurationVar(&p.clockSkew, "clock-skew", maintenance.DefaultClockSkew, "locks started up to this long after a condemned record still hold it back (clocks of other hosts)")
	f.BoolVar(&p.rewriteOldTerms, "rewrite-old-terms", false, "re-seal packs, index files, records and snapshots sealed with an older key term; snapshots get new IDs (takes an exclusive lock)")
}

func newPruneCommand(g *globalOptions) *cobra.Command {
	var p pruneFlags
	cmd := &cobra.Command{
		Use:   "prune",
		Short: "Remove data no snapshot references",
		Long: `Prune deletes packs no snapshot uses, and repacks packs that mix used and
unused data when more than --max-unused would stay unused. It runs beside
backups in two phases: packs are first condemned (backups stop deduplicating
against them) and deleted only when no process that started before that may
still rely on them. When no other process holds a lock, both phases happen
in one run; otherwise a later prune finishes the job.

--rewrite-old-terms (after "key rotate") moves everything sealed with an
older key term to the current one: packs are repacked, index files,
forget and condemned records re-sealed. Snapshots are re-sealed under new
IDs, because stored objects are never overwritten; a forget record names
each old ID and its replacement, so clients that saw the old IDs report no
rollback. What is still on an older term afterwards is listed.`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			c, err := g.openRepo(ctx)
			if err != nil {
				return err
			}
			defer c.Close()
			return g.runPrune(ctx, cmd.OutOrStdout(), c, p)
		},
	}
	p.register(cmd.Flags(), true)
	return cmd
}

// pruneOptions turns the flags into maintenance.PruneOptions.
func (g *globalOptions) pruneOptions(p pruneFlags) (maintenance.PruneOptions, error) {
	mu, err := maintenance.ParseMaxUnused(p.maxUnused)
	if err != nil {
		return maintenance.PruneOptions{}, usageErrorf("%v", err)
	}
	if p.safetyMargin < 0 || p.clockSkew < 0 {
		return maintenance.PruneOptions{}, usageErrorf("--safety-margin and --clock-skew cannot be negative")
	}
	o := maintenance.PruneOptions{DryRun: p.dryRun, MaxUnused: mu, SafetyMargin: p.safetyMargin, ClockSkew: p.clockSkew,
		RewriteOldTerms: p.rewriteOldTerms}
	// Zero means "the default" in PruneOptions; a user's 0 means none.
	if o.SafetyMargin == 0 {
		o.SafetyMargin = -1
	}
	if o.ClockSkew == 0 {
		o.ClockSkew = -1
	}
	if !g.quiet && !g.json {
		o.Log = func(format string, a ...any) { fmt.Fprintf(os.Stderr, format+"\n", a...) }
	}
	return o, nil
}

// runPrune takes prune's lock (refusing when another prune runs) and prunes.
func (g *globalOptions) runPrune(ctx context.Context, w io.Writer, c *client.Client, p pruneFlags) error {
	o, err := g.pruneOptions(p)
	if err != nil {
		return err
	}
	rep, err := c.Prune(ctx, o)
	if rep != nil {
		if g.json {
			if jerr := printJSON(w, rep); jerr != nil && err == nil {
				err = jerr
			}
		} else {
			g.printPruneReport(w, rep)
		}
	}
	return err
}

func (g *globalOptions) printPruneReport(w io.Writer, r *maintenance.PruneReport) {
	would := ""
	if r.DryRun {
		would = "would be "
		g.printf(w, "dry run: nothing is changed\n")
	}
	g.printf(w, "%d snapshots use %d blobs; %d packs, %s before\n", r.Snapshots, r.UsedBlobs, r.PacksBefore, formatBytes(uint64(max(r.BytesBefore, 0))))
	if r.RescuedPacks > 0 {
		g.printf(w, "%d condemned packs are in use again and %skept\n", r.RescuedPacks, would)
	}
	if r.UnusedPacks > 0 {
		g.printf(w, "%d unused packs (%s) %scondemned\n", r.UnusedPacks, formatBytes(uint64(max(r.UnusedBytes, 0))), would)
	}
	if r.RepackedPacks > 0 {
		g.printf(w, "%d packs %srepacked: %d used blobs (%s) copied", r.RepackedPacks, would, r.RepackedBlobs, formatBytes(uint64(max(r.RepackedBytes, 0))))
		if r.OldTermPacks > 0 {
			g.printf(w, ", %d of them for an older key term", r.OldTermPacks)
		}
		g.printf(w, "\n")
	}
	if r.UnindexedPacks > 0 {
		g.printf(w, "%d packs in no index %scondemned\n", r.UnindexedPacks, would)
	}
	if r.UnindexedKept > 0 {
		g.printf(w, "%d packs in no index left alone: other processes hold locks\n", r.UnindexedKept)
	}
	if r.MissingPacks > 0 {
		g.printf(w, "%d index entries for missing packs %sdropped\n", r.MissingPacks, would)
	}
	g.printf(w, "%d packs (%s) %sdeleted\n", r.DeletedPacks, formatBytes(uint64(max(r.DeletedBytes, 0))), would)
	if r.DryRun && r.CondemnedPacks > 0 {
		g.printf(w, "packs condemned now are deleted in the same run when no other process holds a lock\n")
	}
	if r.DeferredPacks > 0 {
		g.printf(w, "%d condemned packs wait for a later prune", r.DeferredPacks)
		if len(r.BlockedByLocks) > 0 {
			g.printf(w, " (held back by %d locks that started before they were condemned)", len(r.BlockedByLocks))
		}
		g.printf(w, "\n")
		for _, l := range r.BlockedByLocks {
			g.printf(w, "  %s\n", l)
		}
	}
	g.printTermReport(w, r, would)
}

// printTermReport says what --rewrite-old-terms did and what is left.
func (g *globalOptions) printTermReport(w io.Writer, r *maintenance.PruneReport, would string) {
	if r.CurrentTerm == 0 {
		return
	}
	g.printf(w, "%d snapshots and %d records %sre-sealed with key term %d\n", r.RewrittenSnapshots, r.RewrittenRecords, would, r.CurrentTerm)
	olds := make([]string, 0, len(r.ReplacedSnapshots))
	for o := range r.ReplacedSnapshots {
		olds = append(olds, o)
	}
	slices.Sort(olds)
	for _, o := range olds {
		g.printf(w, "  snapshot %s is now %s\n", shortHex(o), shortHex(r.ReplacedSnapshots[o]))
	}
	if r.DryRun {
		return
	}
	if len(r.OldTermObjects) == 0 {
		g.printf(w, "every object is sealed with key term %d (config and keyring use the repository key by design)\n", r.CurrentTerm)
		return
	}
	kinds := make([]string, 0, len(r.OldTermObjects))
	for k, n := range r.OldTermObjects {
		kinds = append(kinds, fmt.Sprintf("%d %s", n, k))
	}
	slices.Sort(kinds)
	g.printf(w, "still sealed with an older key term: %s\n", strings.Join(kinds, ", "))
	g.printf(w, "(packs in no index wait for --safety-margin, locks for their owners; run prune --rewrite-old-terms again later)\n")
}

func shortHex(hexID string) string {
	if len(hexID) > 8 {
		return hexID[:8]
	}
	return hexID
}
