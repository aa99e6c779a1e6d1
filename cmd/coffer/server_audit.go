package main

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/coffer-backup/coffer/internal/auditlog"
	"github.com/coffer-backup/coffer/internal/fleet/api"
	"github.com/coffer-backup/coffer/internal/server/admin"
	"github.com/coffer-backup/coffer/internal/server/audit"
	"github.com/coffer-backup/coffer/internal/termesc"
	"github.com/spf13/cobra"
)

// newServerAuditCommand groups the audit log's commands.
func newServerAuditCommand(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "Verify and list the server's audit log",
		Long: `The server appends every enrollment, revocation, token, renewal, repository
creation, deletion (and refused deletion), policy change, refused enrollment
and TLS self-audit alert to a hash-chained, signed audit log in DIR/audit,
and keeps its chain head in the state database (docs/fleet.md, "Audit log").`,
	}
	cmd.AddCommand(newServerAuditVerifyCommand(g), newServerAuditShowCommand(g))
	return cmd
}

func newServerAuditVerifyCommand(g *globalOptions) *cobra.Command {
	var dir string
	cmd := &cobra.Command{
		Use:   "verify --dir DIR [--json]",
		Short: "Check that no audit log entry was edited, removed, reordered or cut off",
		Long: `Verify reads every entry of the audit log and checks its hash chain, its
signed checkpoints and that it ends at the chain head the state database
keeps. The first bad entry is named (segment file, line, sequence number)
and the exit status is 21; an intact log exits 0. It can run while the
server runs.`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := requireDir(dir); err != nil {
				return err
			}
			ctx := cmd.Context()
			adm, err := admin.Open(ctx, dir)
			if err != nil {
				return err
			}
			defer adm.Close()
			rep, verr := audit.Verify(ctx, dir, adm.DB)
			if rep == nil {
				return verr
			}
			if g.json {
				if err := printJSON(cmd.OutOrStdout(), rep); err != nil {
					return err
				}
			} else if verr == nil {
				printAuditVerified(cmd.OutOrStdout(), rep)
			}
			return verr
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "", "server state directory")
	return cmd
}

func printAuditVerified(out io.Writer, rep *audit.VerifyReport) {
	fmt.Fprintf(out, "audit log intact: %d entries in %d segments, %d checkpoints (last at seq %d), ends at seq %d as the database keeps\n",
		rep.Entries, rep.Segments, rep.Checkpoints, rep.LastCheckpoint, rep.HeadSeq)
	if rep.PendingEvents > 0 {
		fmt.Fprintf(out, "%d events wait in the database; the server appends them while it runs\n", rep.PendingEvents)
	}
}

func newServerAuditShowCommand(g *globalOptions) *cobra.Command {
	var dir, since string
	cmd := &cobra.Command{
		Use:   "show --dir DIR [--since T] [--json]",
		Short: "List the audit log's entries",
		Long: `Show lists the audit log's entries, oldest first, from --since on: an RFC
3339 time, a date (2026-12-05, UTC) or a duration back from now (36h, 7d).
It does not check the chain; coffer server audit verify does.`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := requireDir(dir); err != nil {
				return err
			}
			var from time.Time
			if since != "" {
				t, err := audit.ParseSince(since, time.Now())
				if err != nil {
					return usageErrorf("%v", err)
				}
				from = t
			}
			if g.json {
				return printAuditJSON(cmd.OutOrStdout(), dir, from)
			}
			return printAuditEntries(cmd.OutOrStdout(), dir, from)
		},
	}
	f := cmd.Flags()
	f.StringVar(&dir, "dir", "", "server state directory")
	f.StringVar(&since, "since", "", "list entries from this time on (RFC 3339, a date, or a duration back from now)")
	return cmd
}

// printAuditJSON streams the entries as one JSON array.
func printAuditJSON(out io.Writer, dir string, since time.Time) error {
	if _, err := io.WriteString(out, "["); err != nil {
		return err
	}
	sep := "\n"
	err := audit.Scan(dir, since, func(e auditlog.Entry) error {
		line, err := auditlog.EncodeLine(e)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(out, "%s  %s", sep, line[:len(line)-1])
		sep = ",\n"
		return err
	})
	if err != nil {
		return err
	}
	_, err = io.WriteString(out, "\n]\n")
	return err
}

func printAuditEntries(out io.Writer, dir string, since time.Time) error {
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "SEQ\tTIME\tACTOR\tACTION\tTARGET\tOUTCOME\tDETAILS")
	err := audit.Scan(dir, since, func(e auditlog.Entry) error {
		return writeAuditRow(w, api.AuditEntry{Seq: e.Seq, Time: e.Time, Actor: api.AuditActor(e.Actor), Action: e.Action,
			Target: e.Target, Outcome: e.Outcome, Details: e.Details})
	})
	if ferr := w.Flush(); err == nil {
		err = ferr
	}
	return err
}

// writeAuditRow prints one audit entry as a tab-separated row (server
// audit show, fleet audit), every field escaped for the terminal.
func writeAuditRow(w io.Writer, e api.AuditEntry) error {
	var details []string
	for _, k := range slices.Sorted(maps.Keys(e.Details)) {
		details = append(details, termesc.Name(k)+"="+termesc.Name(e.Details[k]))
	}
	_, err := fmt.Fprintf(w, "%d\t%s\t%s/%s\t%s\t%s\t%s\t%s\n", e.Seq, e.Time.Local().Format(time.DateTime),
		termesc.Name(e.Actor.Name), termesc.Name(e.Actor.Role), termesc.Name(e.Action), termesc.Name(e.Target),
		termesc.Name(e.Outcome), strings.Join(details, " "))
	return err
}
