package main

import (
	"context"
	"fmt"
	"io"
	"os"
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
		f.BoolVarP(&p.dryRun, "dry-run", "n", false, "only print the plan: what would be condemned, repacked and deleted, and what waits for a later prune")
	}
	f.StringVar(&p.maxUnused, "max-unused", "10%", `unused data tolerated in packs that still hold used data before they are repacked: "N%", a size ("500M", "10GiB") or "unlimited"`)
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
in one run; otherwise a later prune finishes the job, and the report says
which locks hold the packs and from when they can go. Temporary files that
interrupted writes left are removed once older than --safety-margin.
--dry-run prints the plan and changes nothing.

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
		} else if !g.quiet {
			maintenance.WriteReport(w, rep)
		}
	}
	return err
}
