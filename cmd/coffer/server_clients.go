package main

import (
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/coffer-backup/coffer/internal/server/admin"
	"github.com/coffer-backup/coffer/internal/serverdb"
	"github.com/spf13/cobra"
)

func toClientJSON(c serverdb.Client) clientJSON {
	opt := func(t time.Time) *time.Time {
		if t.IsZero() {
			return nil
		}
		return &t
	}
	return clientJSON{
		Name: c.Name, CertSerial: c.CertSerial.Text(16), CertNotAfter: c.NotAfter, Created: c.Created,
		LastContact: opt(c.LastContact), AllowDelete: c.AllowDelete, QuotaBytes: c.QuotaBytes,
		MaxObjects: c.MaxObjects, MaxRepos: c.MaxRepos,
		Revoked: c.Revoked(), RevokedAt: opt(c.RevokedAt),
	}
}

func printClients(out io.Writer, clients []serverdb.Client) error {
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "CLIENT\tCERT EXPIRES\tLAST CONTACT\tALLOW DELETE\tQUOTA\tSTATUS")
	for _, c := range clients {
		contact := "never"
		if !c.LastContact.IsZero() {
			contact = c.LastContact.Local().Format(time.DateTime)
		}
		quota := "none"
		if c.QuotaBytes > 0 {
			quota = fmt.Sprintf("%d", c.QuotaBytes)
		}
		status := "active"
		if c.Revoked() {
			status = "revoked " + c.RevokedAt.Local().Format(time.DateTime)
		} else if time.Now().After(c.NotAfter) {
			status = "certificate expired"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%v\t%s\t%s\n", c.Name, c.NotAfter.Local().Format(time.DateTime), contact, c.AllowDelete, quota, status)
	}
	return w.Flush()
}

func newServerClientsCommand(g *globalOptions) *cobra.Command {
	var dir string
	cmd := &cobra.Command{
		Use:   "clients --dir DIR [--json]",
		Short: "List enrolled clients, their certificate expiry and last contact",
		Long: `Clients lists the enrolled clients: certificate expiry, last contact,
policy (allow-delete, quota, caps on objects and repositories; 0 means the
server's default) and status. A running server records each client's last
request within its refresh interval (1s), so LAST CONTACT is at most that
far behind.`,
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
			clients, err := adm.Clients(ctx)
			if err != nil {
				return err
			}
			if g.json {
				out := make([]clientJSON, 0, len(clients))
				for _, c := range clients {
					out = append(out, toClientJSON(c))
				}
				return printJSON(cmd.OutOrStdout(), out)
			}
			return printClients(cmd.OutOrStdout(), clients)
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "", "server state directory")
	return cmd
}
