package main

import (
	"io"
	"strings"
	"time"

	"github.com/coffer-backup/coffer/internal/client"
	"github.com/coffer-backup/coffer/internal/maintenance"
	"github.com/coffer-backup/coffer/internal/repository"
	"github.com/spf13/cobra"
)

type forgetOptions struct {
	policy  maintenance.Policy
	groupBy string
	snaps   snapshotFilterFlags
	dryRun  bool
	prune   bool
	pf      pruneFlags
}

func newForgetCommand(g *globalOptions) *cobra.Command {
	var o forgetOptions
	cmd := &cobra.Command{
		Use:   "forget [SNAPSHOT...] [--keep-* ...]",
		Short: "Remove snapshots, by ID or by a retention policy",
		Long: `Forget removes the snapshots given by ID, or those a policy does not keep.
Snapshots are grouped (--group-by, default host,paths) and the policy is
applied to each group: --keep-last n keeps the n newest, --keep-daily n the
newest snapshot of each of the n newest days that have one, and so on;
--keep-within 1y2m3d4h keeps everything that young relative to the group's
newest snapshot; --keep-tag keeps snapshots with a tag. A snapshot kept by any
rule is kept; -1 as a count keeps all. --host, --tag and --path choose which
snapshots are considered at all. Snapshots dated in the future are kept and
count for nothing. An authenticated forget record is written before the
snapshots are removed. Data is freed by prune (--prune runs it afterwards).`,
		RunE: func(cmd *cobra.Command, args []string) error { return g.runForget(cmd, o, args) },
	}
	f := cmd.Flags()
	p := &o.policy
	f.IntVarP(&p.Last, "keep-last", "l", 0, "keep the n newest snapshots")
	f.IntVar(&p.Hourly, "keep-hourly", 0, "keep the newest snapshot of each of the n newest hours")
	f.IntVarP(&p.Daily, "keep-daily", "d", 0, "keep the newest snapshot of each of the n newest days")
	f.IntVarP(&p.Weekly, "keep-weekly", "w", 0, "keep the newest snapshot of each of the n newest weeks")
	f.IntVarP(&p.Monthly, "keep-monthly", "m", 0, "keep the newest snapshot of each of the n newest months")
	f.IntVarP(&p.Yearly, "keep-yearly", "y", 0, "keep the newest snapshot of each of the n newest years")
	f.Var(&p.Within, "keep-within", "keep snapshots newer than this before the newest (e.g. 1y2m3d4h)")
	f.Var(&p.WithinHourly, "keep-within-hourly", "keep hourly snapshots within this span of the newest")
	f.Var(&p.WithinDaily, "keep-within-daily", "keep daily snapshots within this span of the newest")
	f.Var(&p.WithinWeekly, "keep-within-weekly", "keep weekly snapshots within this span of the newest")
	f.Var(&p.WithinMonthly, "keep-within-monthly", "keep monthly snapshots within this span of the newest")
	f.Var(&p.WithinYearly, "keep-within-yearly", "keep yearly snapshots within this span of the newest")
	f.StringArrayVar(&p.Tags, "keep-tag", nil, "keep snapshots with these tags: a,b needs both; repeat for either")
	f.StringVarP(&o.groupBy, "group-by", "g", "host,paths", `group snapshots by these fields ("host", "paths", "tags"; "" for one group)`)
	f.BoolVarP(&o.dryRun, "dry-run", "n", false, "only show what would be removed")
	f.BoolVar(&o.prune, "prune", false, "run prune afterwards if snapshots were removed")
	o.snaps.register(f)
	o.pf.register(f, false)
	return cmd
}

func toForgetJSON(s *repository.Snapshot) forgetSnapJSON {
	return forgetSnapJSON{ID: s.ID.String(), ShortID: s.ID.Short(), Time: s.Time.Format(time.RFC3339Nano),
		Hostname: s.Hostname, Paths: s.Paths, Tags: s.Tags}
}

func (g *globalOptions) runForget(cmd *cobra.Command, o forgetOptions, args []string) error {
	ctx := cmd.Context()
	by, err := maintenance.ParseGroupBy(o.groupBy)
	if err != nil {
		return usageErrorf("%v", err)
	}
	if err := o.policy.Validate(); err != nil {
		return usageErrorf("%v", err)
	}
	if len(args) > 0 && !o.policy.Empty() {
		return usageErrorf("give snapshot IDs or a --keep-* policy, not both")
	}
	if o.prune {
		if _, err := g.pruneOptions(o.pf); err != nil {
			return err
		}
	}
	c, err := g.openRepo(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	w := cmd.OutOrStdout()
	if len(args) == 0 && o.policy.Empty() {
		g.printf(w, "no policy given: no snapshots are removed (use --keep-* or give snapshot IDs)\n")
		return nil
	}
	res, err := c.Forget(ctx, client.ForgetOptions{IDs: args, Filter: o.snaps.filter(), Policy: o.policy, GroupBy: by, DryRun: o.dryRun})
	if res == nil {
		return err
	}
	if perr := g.printForget(w, o, len(args) > 0, res); perr != nil {
		return perr
	}
	if err != nil {
		return err
	}
	switch {
	case len(res.Remove) == 0:
		g.printf(w, "no snapshots to remove\n")
		return nil
	case o.dryRun:
		g.printf(w, "dry run: would remove %d snapshots\n", len(res.Remove))
		return nil
	}
	g.printf(w, "removed %d snapshots\n", len(res.Remove))
	if !o.prune {
		return nil
	}
	g.printf(w, "\n")
	return g.runPrune(ctx, w, c, o.pf)
}

// printForget prints what forget chose: the snapshots given by ID (only
// with --json) or the policy's plans.
func (g *globalOptions) printForget(w io.Writer, o forgetOptions, byID bool, res *client.ForgetResult) error {
	switch {
	case byID && g.json:
		var out []forgetSnapJSON
		for _, s := range res.Remove {
			out = append(out, toForgetJSON(s))
		}
		return printJSON(w, forgetByIDJSON{Remove: out, DryRun: o.dryRun})
	case byID:
		return nil
	case g.json:
		return printJSON(w, forgetJSON(res.Plans))
	}
	g.printf(w, "applying policy: %s\n", o.policy)
	g.printForgetPlans(w, res.Plans)
	return nil
}

func forgetJSON(plans []maintenance.ForgetPlan) []forgetGroupJSON {
	out := []forgetGroupJSON{}
	for _, p := range plans {
		g := forgetGroupJSON{GroupKey: p.Key, Keep: []forgetSnapJSON{}, Remove: []forgetSnapJSON{}, Reasons: []forgetReasonJSON{}}
		for _, k := range p.Keep {
			g.Keep = append(g.Keep, toForgetJSON(k.Snapshot))
			g.Reasons = append(g.Reasons, forgetReasonJSON{Snapshot: toForgetJSON(k.Snapshot), Matches: k.Reasons})
		}
		for _, s := range p.Remove {
			g.Remove = append(g.Remove, toForgetJSON(s))
		}
		out = append(out, g)
	}
	return out
}

func (g *globalOptions) printForgetPlans(w io.Writer, plans []maintenance.ForgetPlan) {
	for _, p := range plans {
		g.printf(w, "\nsnapshots for %s:\n", p.Key)
		g.printf(w, "keep %d snapshots:\n", len(p.Keep))
		for _, k := range p.Keep {
			s := k.Snapshot
			g.printf(w, "  %s  %s  %-10s  %s\n", s.ID.Short(), s.Time.Local().Format("2006-01-02 15:04:05"), strings.Join(s.Tags, ","), strings.Join(k.Reasons, ", "))
		}
		if len(p.Remove) > 0 {
			g.printf(w, "remove %d snapshots:\n", len(p.Remove))
			for _, s := range p.Remove {
				g.printf(w, "  %s  %s  %s\n", s.ID.Short(), s.Time.Local().Format("2006-01-02 15:04:05"), strings.Join(s.Tags, ","))
			}
		}
	}
}
