package main

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/coffer-backup/coffer/internal/server/admin"
	"github.com/spf13/cobra"
)

func newServerTLSReportCommand(g *globalOptions) *cobra.Command {
	var (
		dir  string
		days int
	)
	cmd := &cobra.Command{
		Use:   "tls-report --dir DIR [--days N] [--json]",
		Short: "Summarise refused TLS handshakes and requests per day",
		Long: `Tls-report summarises, per UTC day, the handshakes and requests the server
refused: how many of each kind, and which peers still offer TLS versions or
cipher suites the policy does not allow, with what they offered. The
server's own daily self-scans are left out; their alerts, if any, are
listed.`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := requireDir(dir); err != nil {
				return err
			}
			if days < 1 || days > 3660 {
				return usageErrorf("--days must be between 1 and 3660")
			}
			ctx := cmd.Context()
			adm, err := admin.Open(ctx, dir)
			if err != nil {
				return err
			}
			defer adm.Close()
			rep, err := adm.TLSReport(ctx, days)
			if err != nil {
				return err
			}
			if g.json {
				return printJSON(cmd.OutOrStdout(), rep)
			}
			return printTLSRefusals(cmd.OutOrStdout(), rep)
		},
	}
	f := cmd.Flags()
	f.StringVar(&dir, "dir", "", "server state directory")
	f.IntVar(&days, "days", 7, "number of days, today included")
	return cmd
}

func printTLSRefusals(out io.Writer, rep *admin.TLSReport) error {
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "DAY (UTC)\tREFUSED\tBY KIND")
	for _, d := range rep.Days {
		kinds := make([]string, 0, len(d.ByKind))
		for k, n := range d.ByKind {
			kinds = append(kinds, fmt.Sprintf("%s %d", k, n))
		}
		sort.Strings(kinds)
		fmt.Fprintf(w, "%s\t%d\t%s\n", d.Day, d.Refused, strings.Join(kinds, ", "))
	}
	if err := w.Flush(); err != nil {
		return err
	}
	for _, d := range rep.Days {
		for _, a := range d.Insecure {
			fmt.Fprintf(out, "%s: %s tried insecure TLS %d times", d.Day, a.Peer, a.Count)
			if len(a.Versions) > 0 {
				fmt.Fprintf(out, "; versions %s", strings.Join(a.Versions, ", "))
			}
			if len(a.Suites) > 0 {
				fmt.Fprintf(out, "; suites %s", strings.Join(a.Suites, ", "))
			}
			fmt.Fprintln(out)
		}
	}
	for _, a := range rep.Alerts {
		fmt.Fprintf(out, "ALERT %s: %s\n", a.Time.Local().Format(time.DateTime), a.Message)
	}
	if rep.SelfScanExcluded > 0 {
		fmt.Fprintf(out, "(%d refusals of the server's own self-scans not counted)\n", rep.SelfScanExcluded)
	}
	return nil
}
