package main

import (
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/coffer-backup/coffer/internal/fleet/api"
	"github.com/coffer-backup/coffer/internal/fleet/fleetclient"
	"github.com/coffer-backup/coffer/internal/server/audit"
	"github.com/spf13/cobra"
)

func newFleetAuditCommand(g *globalOptions, o *fleetOptions) *cobra.Command {
	var (
		since string
		f     fleetclient.AuditFilter
	)
	cmd := &cobra.Command{
		Use:   "audit [--since T] [--client C] [--limit N] [--json]",
		Short: "List the server's audit log through the fleet API",
		Long: `Audit lists the entries of the server's audit log, oldest first: who did
what on which target, and how it ended (every enrollment, revocation, user
and role change, policy change, run-now, restore, grant, deletion, login and
refusal). --since takes an RFC 3339 time, a date (2026-12-05, UTC) or a
duration back from now (36h, 7d); --client keeps the entries whose target
is that host; --limit keeps the newest N (default 1000, at most 10000).

Admins and auditors may read the log; an auditor with a scope sees the
entries on the hosts and groups in it. Operators and hosts are refused
(exit 14), and the refusal is itself audited. Checking the chain is
coffer server audit verify's job, on the server.`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if since != "" {
				t, err := audit.ParseSince(since, time.Now())
				if err != nil {
					return usageErrorf("%v", err)
				}
				f.Since = t
			}
			if f.Client != "" && !api.ValidName(f.Client) {
				return usageErrorf("invalid --client %q", f.Client)
			}
			if f.Limit < 0 || f.Limit > api.MaxAuditLimit {
				return usageErrorf("--limit must be between 1 and %d", api.MaxAuditLimit)
			}
			c, err := o.client()
			if err != nil {
				return err
			}
			defer c.Close()
			entries, err := c.Audit(cmd.Context(), f)
			if err != nil {
				return err
			}
			if g.json {
				return printJSON(cmd.OutOrStdout(), fleetAuditJSON(entries))
			}
			return printFleetAudit(cmd.OutOrStdout(), entries)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&since, "since", "", "list entries from this time on (RFC 3339, a date, or a duration back from now)")
	fl.StringVar(&f.Client, "client", "", "only the entries whose target is this host")
	fl.IntVar(&f.Limit, "limit", 0, "keep the newest N entries (default 1000)")
	return cmd
}

// printFleetAudit prints one entry a line, as server audit show does.
func printFleetAudit(out io.Writer, entries []api.AuditEntry) error {
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "SEQ\tTIME\tACTOR\tACTION\tTARGET\tOUTCOME\tDETAILS")
	for _, e := range entries {
		if err := writeAuditRow(w, e); err != nil {
			return err
		}
	}
	return w.Flush()
}
