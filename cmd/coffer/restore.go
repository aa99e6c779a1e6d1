package main

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/coffer-backup/coffer/internal/client"
	"github.com/coffer-backup/coffer/internal/filter"
	"github.com/coffer-backup/coffer/internal/restorer"
	"github.com/coffer-backup/coffer/internal/termesc"
	"github.com/spf13/cobra"
)

type restoreOptions struct {
	target   string
	includes []string
	excludes []string
	verify   bool
	safe     bool
	progress bool
	snaps    snapshotFilterFlags
}

func newRestoreCommand(g *globalOptions) *cobra.Command {
	var o restoreOptions
	cmd := &cobra.Command{
		Use:   "restore SNAPSHOT --target DIR",
		Short: "Restore a snapshot into a directory",
		Long: `Restore SNAPSHOT ("latest" or an ID prefix) below --target. Paths are
recreated below the target as they were backed up (absolute paths become
target/...). Files already present and correct are skipped, so an interrupted
restore resumes. Nothing is ever written outside the target.

By default every piece of metadata is restored exactly, as a full-system
restore needs: owners, set-ID bits, device nodes, file capabilities and
other security.* and trusted.* xattrs, immutable and append-only flags.
With --safe, for restoring files of someone else (a snapshot you do not
trust, restored as root), none of those privileges is restored: device
nodes are skipped with a warning, setuid and setgid bits cleared,
security.* and trusted.* xattrs and the immutable and append-only flags
left out, and everything is owned by the user running the restore. The
summary says what was left out.`,
		Args: usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			if o.target == "" {
				return usageErrorf("--target is required")
			}
			inc, err := compileFilter(o.includes)
			if err != nil {
				return err
			}
			exc, err := compileFilter(o.excludes)
			if err != nil {
				return err
			}
			c, err := g.openRepo(ctx)
			if err != nil {
				return err
			}
			defer c.Close()
			prog := &restorer.Progress{}
			start := time.Now()
			stop := g.startProgress(o.progress, func() string { return restoreProgressLine(start, prog) })
			stopStatus := g.startJSONStatus(cmd.OutOrStdout(), func() any { return restoreStatus(start, prog) })
			res, err := c.Restore(ctx, client.RestoreOptions{Snapshot: args[0], Filter: o.snaps.filter(), Target: o.target,
				Include: inc, Exclude: exc, Verify: o.verify, NoLock: g.noLock, Progress: prog, Safe: o.safe})
			stopStatus()
			stop()
			if err != nil {
				return err
			}
			snap, errs := res.Snapshot, res.Errors
			for _, w := range res.Warnings {
				warnf("%s", termesc.Name(w.Error()))
			}
			for _, e := range errs {
				fmt.Fprintf(os.Stderr, "error: %s\n", termesc.Name(e.Error()))
				if g.json {
					_ = printJSONLine(cmd.OutOrStdout(), errorJSON{MessageType: msgError, Error: errorMessageJSON{e.Err.Error()}, During: "restore", Item: e.Path})
				}
			}
			if g.json {
				if err := printJSONLine(cmd.OutOrStdout(), restoreSummaryJSON{MessageType: msgSummary, SnapshotID: snap.ID.String(),
					FilesRestored: prog.Files.Load(), BytesRestored: prog.Bytes.Load(), FilesSkipped: prog.Skipped.Load(),
					Errors: len(errs), Verified: o.verify, Safe: restoreSafe(o.safe, &prog.Safe)}); err != nil {
					return err
				}
			} else {
				g.printf(cmd.OutOrStdout(), "restored snapshot %s to %s: %d files, %s (%d already correct) in %s\n", snap.ID.Short(), o.target,
					prog.Files.Load(), formatBytes(prog.Bytes.Load()), prog.Skipped.Load(), time.Since(start).Round(time.Millisecond))
				if o.safe {
					g.printf(cmd.OutOrStdout(), "%s\n", safeSummary(&prog.Safe))
				}
			}
			for _, p := range res.UnmatchedIncludes {
				warnf("--include %q matched nothing in snapshot %s (%s of host %s, paths %s)", p, snap.ID.Short(),
					snap.Time.Local().Format("2006-01-02 15:04:05"), snap.Hostname, strings.Join(snap.Paths, " "))
			}
			if len(errs) > 0 {
				return fmt.Errorf("%d entries could not be restored", len(errs))
			}
			if n := len(res.UnmatchedIncludes); n > 0 {
				return fmt.Errorf("%d --include pattern(s) matched nothing in snapshot %s; check the pattern, or choose the snapshot with --host, --path or --tag", n, snap.ID.Short())
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVarP(&o.target, "target", "t", "", "directory to restore into")
	f.StringArrayVarP(&o.includes, "include", "i", nil, "restore only paths matching a pattern (repeatable)")
	f.StringArrayVarP(&o.excludes, "exclude", "e", nil, "do not restore paths matching a pattern (repeatable)")
	f.BoolVar(&o.verify, "verify", false, "re-read every restored file and check it against the snapshot")
	f.BoolVar(&o.safe, "safe", false, "restore no privileges: no device nodes, set-ID bits, capabilities, security.*/trusted.* xattrs or immutable/append-only flags; files owned by you")
	f.BoolVar(&o.progress, "progress", false, "show progress even when not on a terminal (there: a plain line every 10s, or every COFFER_PROGRESS_INTERVAL)")
	o.snaps.register(f)
	return cmd
}

func compileFilter(patterns []string) (*filter.Matcher, error) {
	if len(patterns) == 0 {
		return nil, nil
	}
	m, err := filter.New(patterns)
	if err != nil {
		return nil, usageErrorf("pattern: %v", err)
	}
	return m, nil
}

// restoreSafe is the JSON summary's account of --safe; nil without it.
func restoreSafe(safe bool, c *restorer.SafeCounts) *restoreSafeJSON {
	if !safe {
		return nil
	}
	return &restoreSafeJSON{DevicesSkipped: c.Devices.Load(), SetIDCleared: c.SetID.Load(),
		XattrsDropped: c.Xattrs.Load(), FlagsCleared: c.Flags.Load(), OwnersChanged: c.Owners.Load()}
}

// safeSummary is the text summary's line of what --safe left out.
func safeSummary(c *restorer.SafeCounts) string {
	return fmt.Sprintf("safe restore left out: %d device nodes, set-ID bits of %d entries, %d security/trusted xattrs, "+
		"immutable/append-only flags of %d entries; %d entries of other owners now yours",
		c.Devices.Load(), c.SetID.Load(), c.Xattrs.Load(), c.Flags.Load(), c.Owners.Load())
}
