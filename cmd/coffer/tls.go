package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/coffer-backup/coffer/internal/tlsscan"
	"github.com/spf13/cobra"
)

func newTLSCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "tls",
		Short: "Inspect TLS servers against coffer's TLS policy",
	}
	cmd.AddCommand(newTLSScanCommand())
	return cmd
}

func newTLSScanCommand() *cobra.Command {
	var (
		asJSON     bool
		timeout    time.Duration
		maxTime    time.Duration
		serverName string
	)
	cmd := &cobra.Command{
		Use:   "scan HOST:PORT",
		Short: "Scan a TLS server's versions, suites, groups and certificate",
		Long: `Scan connects to HOST:PORT once per TLS version, cipher suite and key
exchange group, sends no application data, and reports what the server
accepts, its certificate chain and a verdict against coffer's TLS policy.
It exits with code 20 when the server is weaker than the policy.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			addr := args[0]
			if _, _, err := net.SplitHostPort(addr); err != nil {
				return fmt.Errorf("%w: %q is not HOST:PORT: %v", errUsage, addr, err)
			}
			report, err := tlsscan.Scan(cmd.Context(), addr, tlsscan.Options{
				Timeout: timeout, MaxDuration: maxTime, ServerName: serverName,
			})
			if report != nil {
				var perr error
				if asJSON {
					enc := json.NewEncoder(cmd.OutOrStdout())
					enc.SetIndent("", "  ")
					perr = enc.Encode(report)
				} else {
					perr = printTLSReport(cmd.OutOrStdout(), report)
				}
				if perr != nil {
					return perr
				}
			}
			if err != nil && !errors.Is(err, tlsscan.ErrScanIncomplete) {
				return err
			}
			if report != nil && !report.Pass {
				n := 0
				for _, f := range report.Findings {
					if f.Severity == tlsscan.SeverityFail {
						n++
					}
				}
				return fmt.Errorf("%s: %w (%d findings)", addr, errTLSPolicy, n)
			}
			return err
		},
	}
	f := cmd.Flags()
	f.BoolVar(&asJSON, "json", false, "print the report as JSON")
	f.DurationVar(&timeout, "timeout", 5*time.Second, "timeout of each handshake")
	f.DurationVar(&maxTime, "max-time", 3*time.Minute, "timeout of the whole scan")
	f.StringVar(&serverName, "servername", "", "SNI to send (default: the host, unless it is an IP address)")
	return cmd
}

func yesNo(b bool) string {
	if b {
		return "accepted"
	}
	return "refused"
}

func printTLSReport(out io.Writer, r *tlsscan.Report) error {
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintf(w, "TLS scan of %s", r.Address)
	if r.ServerName != "" {
		fmt.Fprintf(w, " (SNI %s)", r.ServerName)
	}
	fmt.Fprintf(w, " at %s\n\nPROTOCOL\tRESULT\n", r.Time.Format(time.RFC3339))
	for _, v := range r.Versions {
		fmt.Fprintf(w, "%s\t%s\n", v.Version, yesNo(v.Accepted))
	}
	if len(r.TLS13Suites) > 0 {
		fmt.Fprintf(w, "\nTLS 1.3 suite chosen by the server: %s\n", strings.Join(r.TLS13Suites, ", "))
	}
	if len(r.Suites) > 0 {
		fmt.Fprintf(w, "\nVERSION\tCIPHER SUITE\tRESULT\tPOLICY\n")
		for _, s := range r.Suites {
			policy := "allowed"
			if !s.Allowed {
				policy = "not allowed"
			}
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", s.Version, s.Suite, yesNo(s.Accepted), policy)
		}
	}
	if len(r.Groups) > 0 {
		fmt.Fprintf(w, "\nVERSION\tKEY EXCHANGE GROUP\tRESULT\n")
		for _, g := range r.Groups {
			result := yesNo(g.Accepted)
			if g.Undetermined {
				result = "unknown (the server preferred its certificate's curve)"
			}
			fmt.Fprintf(w, "%s\t%s\t%s\n", g.Version, g.Group, result)
		}
	}
	fmt.Fprintf(w, "\nClient certificate requested: %v\n", r.ClientCertRequested)
	for i, c := range r.Chain {
		fmt.Fprintf(w, "\nCertificate %d: %s\n", i, c.Subject)
		fmt.Fprintf(w, "  issuer\t%s\n", c.Issuer)
		if names := append(append(append([]string(nil), c.DNSNames...), c.IPAddresses...), c.URIs...); len(names) > 0 {
			fmt.Fprintf(w, "  names\t%s\n", strings.Join(names, ", "))
		}
		fmt.Fprintf(w, "  key\t%s, signed with %s, CA: %v\n", c.KeyType, c.SigAlg, c.IsCA)
		fmt.Fprintf(w, "  valid\t%s to %s\n", c.NotBefore.Format(time.DateOnly), c.NotAfter.Format(time.DateOnly))
		fmt.Fprintf(w, "  fingerprint\t%s\n", c.Fingerprint)
	}
	for _, e := range r.Errors {
		fmt.Fprintf(w, "\nprobe failed: %s", e)
	}
	verdict := "PASS"
	if !r.Pass {
		verdict = "FAIL: weaker than the policy"
	}
	fmt.Fprintf(w, "\nVerdict: %s\n", verdict)
	for _, f := range r.Findings {
		fmt.Fprintf(w, "  %s\t%s\n", strings.ToUpper(f.Severity), f.Message)
	}
	return w.Flush()
}
