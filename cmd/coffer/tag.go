package main

import (
	"github.com/coffer-backup/coffer/internal/repository"
	"github.com/spf13/cobra"
)

type tagOptions struct {
	snaps            snapshotFilterFlags
	set, add, remove []string
}

func newTagCommand(g *globalOptions) *cobra.Command {
	var o tagOptions
	cmd := &cobra.Command{
		Use:   "tag [--add T] [--remove T] [--set T] [SNAPSHOT...]",
		Short: "Add, remove or set the tags of snapshots",
		Long: `Tag changes the tags of the snapshots given by ID (or "latest"), or with no
SNAPSHOT of every snapshot that --host, --tag and --path select. Each flag
takes a comma-separated list and may be repeated. --set replaces all tags
(--set "" removes them) and excludes --add and --remove.

Snapshots are never overwritten: a changed snapshot gets a new ID, and an
authenticated record names the old one and its replacement, so clients
that saw the old ID do not mistake its absence for a rollback.`,
		Example: `  coffer tag --add keep-forever 4f2a9c1e
  coffer tag --host web01 --remove nightly --add weekly`,
		RunE: func(cmd *cobra.Command, args []string) error { return g.runTag(cmd, o, args) },
	}
	f := cmd.Flags()
	f.StringArrayVar(&o.add, "add", nil, "add these tags (comma-separated; repeatable)")
	f.StringArrayVar(&o.remove, "remove", nil, "remove these tags (comma-separated; repeatable)")
	f.StringArrayVar(&o.set, "set", nil, "replace all tags with these (comma-separated; repeatable)")
	o.snaps.register(f)
	return cmd
}

func (o tagOptions) change(cmd *cobra.Command) (repository.TagChange, error) {
	c := repository.TagChange{Add: splitTags(o.add), Remove: splitTags(o.remove)}
	if cmd.Flags().Changed("set") {
		c.Set = append([]string{}, splitTags(o.set)...) // non-nil: --set "" removes all
		if len(o.add)+len(o.remove) > 0 {
			return c, usageErrorf("--set cannot be combined with --add or --remove")
		}
	} else if len(c.Add)+len(c.Remove) == 0 {
		return c, usageErrorf("give --add, --remove or --set")
	}
	return c, nil
}

func (g *globalOptions) runTag(cmd *cobra.Command, o tagOptions, args []string) error {
	change, err := o.change(cmd)
	if err != nil {
		return err
	}
	ctx := cmd.Context()
	c, err := g.openRepo(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = c.Close() }()
	unlock, err := g.lockRepo(ctx, c, "tag", false, false)
	if err != nil {
		return err
	}
	defer unlock()
	snaps, err := c.LoadSnapshots(ctx)
	if err != nil {
		return err
	}
	sel, err := repository.SelectSnapshots(snaps, args, o.snaps.filter())
	if err != nil {
		return err
	}
	ids := make([]repository.ID, len(sel))
	for i, s := range sel {
		ids[i] = s.ID
	}
	m, err := c.Repository().EditSnapshots(ctx, repository.Hostname(), ids, change.Apply)
	if err != nil {
		return err
	}
	// Record the new IDs as seen, so that their removal is noticed.
	if _, err := c.LoadSnapshots(ctx); err != nil {
		return err
	}
	out := tagJSON{ChangedSnapshots: len(m), Replaced: []tagReplacementJSON{}}
	for _, s := range sel {
		if n, ok := m[s.ID]; ok {
			out.Replaced = append(out.Replaced, tagReplacementJSON{OldID: s.ID.String(), NewID: n.String()})
			g.printf(cmd.OutOrStdout(), "snapshot %s is now %s\n", s.ID.Short(), n.Short())
		}
	}
	if g.json {
		return printJSON(cmd.OutOrStdout(), out)
	}
	g.printf(cmd.OutOrStdout(), "modified tags on %d snapshots\n", len(m))
	return nil
}
