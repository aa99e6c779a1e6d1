package main

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/coffer-backup/coffer/internal/fleet/api"
	"github.com/coffer-backup/coffer/internal/fleet/policy"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

func newFleetPolicyCommand(g *globalOptions, o *fleetOptions) *cobra.Command {
	cmd := &cobra.Command{Use: "policy", Short: "Set and show the backup policy of groups and hosts"}
	cmd.AddCommand(newFleetPolicySetCommand(g, o), newFleetPolicyShowCommand(g, o), newFleetPolicyListCommand(g, o))
	return cmd
}

// policyTarget is --client C or --group G, exactly one, as the API's path.
func policyTarget(client, group string) (string, error) {
	switch {
	case (client == "") == (group == ""):
		return "", usageErrorf("give exactly one of --client C and --group G")
	case client != "" && !api.ValidName(client):
		return "", usageErrorf("invalid client name %q", client)
	case group != "" && !api.ValidName(group):
		return "", usageErrorf("invalid group name %q", group)
	case client != "":
		return api.PoliciesPath + "/client/" + client, nil
	}
	return api.PoliciesPath + "/group/" + group, nil
}

// policyFlags are fleet policy set's setting flags.
type policyFlags struct {
	paths, excludes                                          []string
	excludeCaches, reportFileNames                           bool
	schedule, window, pruneSchedule, checkSchedule, restore  string
	location, readDataSubset                                 string
	unset                                                    []string
	jitter, timeout, retryInterval, grace                    time.Duration
	retryBackoff                                             float64
	retryAttempts                                            int
	keepLast, keepHourly, keepDaily, keepWeekly, keepMonthly int
	keepYearly                                               int
}

func (p *policyFlags) register(f *pflag.FlagSet) {
	f.StringSliceVar(&p.paths, "paths", nil, "absolute paths to back up (repeatable, comma-separated)")
	f.StringSliceVar(&p.excludes, "exclude", nil, "exclude patterns, as backup --exclude (repeatable)")
	f.BoolVar(&p.excludeCaches, "exclude-caches", false, "skip directories holding a CACHEDIR.TAG")
	f.StringVar(&p.schedule, "schedule", "", "when backups run (docs/fleet.md, Schedules)")
	f.DurationVar(&p.jitter, "jitter", 0, "spread each host's starts over [0, D), per host name")
	f.StringVar(&p.window, "window", "", "when a job may start, e.g. 'Mon-Fri 20:00-24:00'")
	f.DurationVar(&p.timeout, "timeout", 0, "stop a job that runs longer (0: no limit)")
	f.DurationVar(&p.retryInterval, "retry-interval", 0, "wait before the first retry after a failure")
	f.Float64Var(&p.retryBackoff, "retry-backoff", 0, "factor each next retry's wait grows by")
	f.IntVar(&p.retryAttempts, "retry-attempts", 0, "retries after a failure (0: none)")
	for _, k := range []struct {
		name string
		v    *int
	}{{"last", &p.keepLast}, {"hourly", &p.keepHourly}, {"daily", &p.keepDaily}, {"weekly", &p.keepWeekly}, {"monthly", &p.keepMonthly}, {"yearly", &p.keepYearly}} {
		f.IntVar(k.v, "keep-"+k.name, 0, "retention: keep the "+k.name+" N snapshots (-1: all), on the server's arrival times")
	}
	f.StringVar(&p.pruneSchedule, "prune-schedule", "", "when the server orders forget+prune")
	f.StringVar(&p.checkSchedule, "check-schedule", "", "when check runs")
	f.DurationVar(&p.grace, "grace", 0, "how late past its cadence a backup may be before it is missed (0: one cadence)")
	f.StringVar(&p.restore, "restore-root", "", "directory restores must land under (default /var/restore)")
	f.BoolVar(&p.reportFileNames, "report-file-names", false, "let the agent put file names in its reports")
	f.StringVar(&p.location, "location", "", "the repository: coffer://HOST[:PORT]/REPO, s3:https://HOST/BUCKET[/PREFIX] or /PATH (default coffer://SERVER/<client>)")
	f.StringVar(&p.readDataSubset, "read-data-subset", "", "what scheduled checks read of the data: N%, n/m or a size (needs --check-schedule)")
	f.StringSliceVar(&p.unset, "unset", nil, "clear these settings, named as their flags (keep-daily, window, ...), so the group's or the default applies")
}

// unsetNames turns --unset's flag names into the API's field names.
func unsetNames(flags []string) []string {
	out := make([]string, 0, len(flags))
	for _, f := range flags {
		name := strings.ReplaceAll(strings.TrimPrefix(f, "--"), "-", "_")
		if name == "exclude" {
			name = "excludes"
		}
		out = append(out, name)
	}
	return out
}

// settings returns the settings whose flags were given.
func (p *policyFlags) settings(f *pflag.FlagSet) api.PolicySettings {
	var s api.PolicySettings
	set := func(name string, fn func()) {
		if f.Changed(name) {
			fn()
		}
	}
	dur := func(d time.Duration) *policy.Duration { v := policy.Duration(d); return &v }
	set("paths", func() { s.Paths = &p.paths })
	set("exclude", func() { s.Excludes = &p.excludes })
	set("exclude-caches", func() { s.ExcludeCaches = &p.excludeCaches })
	set("schedule", func() { s.Schedule = &p.schedule })
	set("jitter", func() { s.Jitter = dur(p.jitter) })
	set("window", func() { s.Window = &p.window })
	set("timeout", func() { s.Timeout = dur(p.timeout) })
	set("retry-interval", func() { s.RetryInterval = dur(p.retryInterval) })
	set("retry-backoff", func() { s.RetryBackoff = &p.retryBackoff })
	set("retry-attempts", func() { s.RetryAttempts = &p.retryAttempts })
	set("keep-last", func() { s.KeepLast = &p.keepLast })
	set("keep-hourly", func() { s.KeepHourly = &p.keepHourly })
	set("keep-daily", func() { s.KeepDaily = &p.keepDaily })
	set("keep-weekly", func() { s.KeepWeekly = &p.keepWeekly })
	set("keep-monthly", func() { s.KeepMonthly = &p.keepMonthly })
	set("keep-yearly", func() { s.KeepYearly = &p.keepYearly })
	set("prune-schedule", func() { s.PruneSchedule = &p.pruneSchedule })
	set("check-schedule", func() { s.CheckSchedule = &p.checkSchedule })
	set("grace", func() { s.Grace = dur(p.grace) })
	set("restore-root", func() { s.RestoreRoot = &p.restore })
	set("report-file-names", func() { s.ReportFileNames = &p.reportFileNames })
	set("location", func() { s.Location = &p.location })
	set("read-data-subset", func() { s.ReadDataSubset = &p.readDataSubset })
	return s
}

func newFleetPolicySetCommand(g *globalOptions, o *fleetOptions) *cobra.Command {
	var (
		client, group string
		pf            policyFlags
	)
	cmd := &cobra.Command{
		Use:   "set (--client C | --group G) [--paths P...] [--schedule EXPR] [setting flags]",
		Short: "Set policy fields of a group or a host",
		Long: `Set changes the fields whose flags are given, for a group or for one host;
the other fields stay as they were. A host's policy takes each field from
its own settings, else from its group's: a host overrides its group field
by field. --unset FLAG,... clears settings (named as their flags, e.g.
--unset keep-daily,window), so that the group's value, or the default,
applies again. The server checks the result as an agent would and refuses an
invalid schedule or field with an error naming the flag; then it signs each
affected host's policy with a new generation and sends it to the host's
agent.`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			path, err := policyTarget(client, group)
			if err != nil {
				return err
			}
			req := api.PolicySet{PolicySettings: pf.settings(cmd.Flags()), Unset: unsetNames(pf.unset)}
			if req.PolicySettings == (api.PolicySettings{}) && len(req.Unset) == 0 {
				return usageErrorf("no setting given (--paths, --schedule, --keep-daily, ..., --unset)")
			}
			var e fleetPolicyJSON
			if err := o.do(cmd.Context(), http.MethodPut, path, req, &e); err != nil {
				return err
			}
			if g.json {
				return printJSON(cmd.OutOrStdout(), e)
			}
			printPolicyEntry(cmd.OutOrStdout(), e)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&client, "client", "", "the host whose policy to set")
	f.StringVar(&group, "group", "", "the group whose policy to set")
	pf.register(f)
	return cmd
}

func newFleetPolicyShowCommand(g *globalOptions, o *fleetOptions) *cobra.Command {
	var client, group string
	cmd := &cobra.Command{
		Use:   "show (--client C | --group G)",
		Short: "Show a group's settings, or a host's settings and its policy in force",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			path, err := policyTarget(client, group)
			if err != nil {
				return err
			}
			var e fleetPolicyJSON
			if err := o.do(cmd.Context(), http.MethodGet, path, nil, &e); err != nil {
				return err
			}
			if g.json {
				return printJSON(cmd.OutOrStdout(), e)
			}
			printPolicyEntry(cmd.OutOrStdout(), e)
			return nil
		},
	}
	cmd.Flags().StringVar(&client, "client", "", "the host")
	cmd.Flags().StringVar(&group, "group", "", "the group")
	return cmd
}

func newFleetPolicyListCommand(g *globalOptions, o *fleetOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the policy settings of every group and host",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			var list []fleetPolicyJSON
			if err := o.do(cmd.Context(), http.MethodGet, api.PoliciesPath, nil, &list); err != nil {
				return err
			}
			if g.json {
				return printJSON(cmd.OutOrStdout(), list)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "TARGET\tSETTINGS")
			for _, e := range list {
				fmt.Fprintf(tw, "%s\t%s\n", e.Target, strings.Join(settingLines(e.Settings), "; "))
			}
			return tw.Flush()
		},
	}
}

func printPolicyEntry(w io.Writer, e fleetPolicyJSON) {
	fmt.Fprintf(w, "%s\n", e.Target)
	if e.Group != "" {
		fmt.Fprintf(w, "  group: %s\n", e.Group)
	}
	lines := settingLines(e.Settings)
	if len(lines) == 0 {
		fmt.Fprintln(w, "  settings: none of its own")
	}
	for _, l := range lines {
		fmt.Fprintf(w, "  %s\n", l)
	}
	if e.Effective != nil {
		p := e.Effective
		fmt.Fprintf(w, "policy in force: generation %d, issued %s\n", p.Generation, p.Issued.Local().Format(time.DateTime))
		for _, r := range p.Repositories {
			fmt.Fprintf(w, "  repository %s: paths %s, schedule %s\n", r.Name, strings.Join(r.Paths, ", "), r.Schedule)
		}
		fmt.Fprintf(w, "  restore root %s\n", p.Root())
	}
}

// settingLines prints the fields a settings object sets, as flags.
func settingLines(s api.PolicySettings) []string {
	var out []string
	add := func(flag string, set bool, v func() string) {
		if set {
			out = append(out, flag+" "+v())
		}
	}
	str := func(p *string) func() string { return func() string { return fmt.Sprintf("%q", *p) } }
	list := func(p *[]string) func() string { return func() string { return strings.Join(*p, ",") } }
	dur := func(p *policy.Duration) func() string { return func() string { return p.String() } }
	num := func(p *int) func() string { return func() string { return fmt.Sprint(*p) } }
	add("--paths", s.Paths != nil, list(s.Paths))
	add("--exclude", s.Excludes != nil, list(s.Excludes))
	add("--schedule", s.Schedule != nil, str(s.Schedule))
	add("--window", s.Window != nil, str(s.Window))
	add("--jitter", s.Jitter != nil, dur(s.Jitter))
	add("--timeout", s.Timeout != nil, dur(s.Timeout))
	add("--retry-interval", s.RetryInterval != nil, dur(s.RetryInterval))
	add("--retry-attempts", s.RetryAttempts != nil, num(s.RetryAttempts))
	add("--keep-last", s.KeepLast != nil, num(s.KeepLast))
	add("--keep-daily", s.KeepDaily != nil, num(s.KeepDaily))
	add("--keep-weekly", s.KeepWeekly != nil, num(s.KeepWeekly))
	add("--keep-monthly", s.KeepMonthly != nil, num(s.KeepMonthly))
	add("--prune-schedule", s.PruneSchedule != nil, str(s.PruneSchedule))
	add("--check-schedule", s.CheckSchedule != nil, str(s.CheckSchedule))
	add("--grace", s.Grace != nil, dur(s.Grace))
	add("--restore-root", s.RestoreRoot != nil, str(s.RestoreRoot))
	add("--keep-hourly", s.KeepHourly != nil, num(s.KeepHourly))
	add("--keep-yearly", s.KeepYearly != nil, num(s.KeepYearly))
	add("--retry-backoff", s.RetryBackoff != nil, func() string { return fmt.Sprint(*s.RetryBackoff) })
	add("--exclude-caches", s.ExcludeCaches != nil, func() string { return fmt.Sprint(*s.ExcludeCaches) })
	add("--report-file-names", s.ReportFileNames != nil, func() string { return fmt.Sprint(*s.ReportFileNames) })
	add("--location", s.Location != nil, str(s.Location))
	add("--read-data-subset", s.ReadDataSubset != nil, str(s.ReadDataSubset))
	return out
}
