package main

import (
	"fmt"
	"time"

	"github.com/coffer-backup/coffer/internal/find"
	"github.com/coffer-backup/coffer/internal/repository"
	"github.com/coffer-backup/coffer/internal/termesc"
	"github.com/spf13/cobra"
)

type findOptions struct {
	snaps      snapshotFilterFlags
	snapshots  []string
	ignoreCase bool
	long       bool
	oldest     string
	newest     string
	patterns   []string
}

func newFindCommand(g *globalOptions) *cobra.Command {
	var o findOptions
	cmd := &cobra.Command{
		Use:   "find [flags] PATTERN...",
		Short: "Find files and directories in snapshots by name or path",
		Long: `Find lists the entries of snapshots that match any PATTERN, newest snapshot
first. Patterns are those of --exclude (docs/filters.md): "*.conf" matches
a name at any depth, "/etc/*.conf" a path from the snapshot root, and
everything below a matching directory matches too. --oldest and --newest
bound the modification time (YYYY-MM-DD, YYYY-MM-DD HH:MM[:SS] in local
time, or RFC 3339). --snapshot (repeatable) limits the search to those
snapshots; --host, --tag and --path choose among them.`,
		Example: `  coffer find '*.sql'
  coffer find --snapshot latest --newest 2024-06-01 /etc/ssh/sshd_config`,
		Args: usageArgs(cobra.MinimumNArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error { return g.runFind(cmd, o, args) },
	}
	f := cmd.Flags()
	f.StringArrayVarP(&o.snapshots, "snapshot", "s", nil, "search only this snapshot (ID prefix or \"latest\"; repeatable)")
	f.BoolVarP(&o.ignoreCase, "ignore-case", "i", false, "match patterns without regard to case")
	f.BoolVarP(&o.long, "long", "l", false, "long listing")
	f.StringVarP(&o.oldest, "oldest", "O", "", "only entries modified at or after this time")
	f.StringVarP(&o.newest, "newest", "N", "", "only entries modified at or before this time")
	o.snaps.register(f)
	return cmd
}

func (o findOptions) finder() (*find.Finder, error) {
	fo := find.Options{Patterns: o.patterns, IgnoreCase: o.ignoreCase}
	var err error
	if o.oldest != "" {
		if fo.Oldest, err = find.ParseTime(o.oldest, time.Local); err != nil {
			return nil, usageErrorf("--oldest: %v", err)
		}
	}
	if o.newest != "" {
		if fo.Newest, err = find.ParseTime(o.newest, time.Local); err != nil {
			return nil, usageErrorf("--newest: %v", err)
		}
	}
	f, err := find.New(fo)
	if err != nil {
		return nil, usageErrorf("%v", err)
	}
	return f, nil
}

func (g *globalOptions) runFind(cmd *cobra.Command, o findOptions, args []string) error {
	o.patterns = args
	fd, err := o.finder()
	if err != nil {
		return err
	}
	ctx := cmd.Context()
	c, snaps, done, err := g.openReader(ctx, "find")
	if err != nil {
		return err
	}
	defer done()
	sel, err := repository.SelectSnapshots(snaps, o.snapshots, o.snaps.filter())
	if err != nil {
		return err
	}
	w := cmd.OutOrStdout()
	arr := &jsonArray{w: w}
	for i := len(sel) - 1; i >= 0; i-- {
		s := sel[i]
		res := findSnapshotJSON{Snapshot: s.ID.String(), Matches: []findMatchJSON{}}
		header := false
		err := fd.Tree(ctx, c.Repository(), s.Tree, func(p string, n *repository.Node) error {
			res.Hits++
			if g.json {
				res.Matches = append(res.Matches, toFindMatchJSON(p, n))
				return nil
			}
			if !header {
				header = true
				g.printf(w, "Found matching entries in snapshot %s from %s\n", s.ID.Short(), s.Time.Local().Format("2006-01-02 15:04:05"))
			}
			if o.long {
				fmt.Fprintf(w, "%s %8s %8s %12d %s %s\n", modeString(n), orID(n.User, n.UID), orID(n.Group, n.GID), n.Size,
					time.Unix(0, n.MTimeNs).Local().Format("2006-01-02 15:04:05"), termesc.Name(p))
				return nil
			}
			fmt.Fprintln(w, termesc.Name(p))
			return nil
		})
		if err != nil {
			return fmt.Errorf("snapshot %s: %w", s.ID.Short(), err)
		}
		if header {
			g.printf(w, "\n")
		}
		if g.json && res.Hits > 0 {
			if err := arr.add(res); err != nil {
				return err
			}
		}
	}
	if g.json {
		return arr.close()
	}
	return nil
}

func toFindMatchJSON(p string, n *repository.Node) findMatchJSON {
	return findMatchJSON{Path: p, Type: string(n.Type), Permissions: modeString(n), Mode: n.Mode, Size: n.Size,
		UID: n.UID, GID: n.GID, User: n.User, Group: n.Group,
		MTime: time.Unix(0, n.MTimeNs).UTC(), ATime: time.Unix(0, n.ATimeNs).UTC(), CTime: time.Unix(0, n.CTimeNs).UTC()}
}
