package main

import (
	"fmt"
	"os"
	"time"

	"github.com/coffer-backup/coffer/internal/server/admin"
	"github.com/spf13/cobra"
)

func newServerTokenCommand(g *globalOptions) *cobra.Command {
	var (
		dir, client string
		ttl         time.Duration
	)
	cmd := &cobra.Command{
		Use:   "token --dir DIR --client NAME [--ttl 15m]",
		Short: "Print a one-time enrollment token for a client",
		Long: `Token prints a one-time enrollment token for client NAME on standard output:
it carries the fingerprint of the server's CA and a secret. The server keeps
only a hash of the secret. The token can be redeemed once, before it
expires, with coffer enroll on the client. It works while the server runs.
Hand it over as you would a password.`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := requireDir(dir); err != nil {
				return err
			}
			if client == "" {
				return usageErrorf("--client is required")
			}
			ctx := cmd.Context()
			adm, err := admin.Open(ctx, dir)
			if err != nil {
				return err
			}
			defer adm.Close()
			tok, exp, err := adm.IssueToken(ctx, client, ttl)
			if err != nil {
				return err
			}
			if g.json {
				return printJSON(cmd.OutOrStdout(), serverTokenJSON{Client: client, Token: tok, Expires: exp.UTC()})
			}
			fmt.Fprintln(cmd.OutOrStdout(), tok)
			if !g.quiet {
				fmt.Fprintf(os.Stderr, "one-time token for client %q, valid until %s\non the client: coffer enroll --server HOST:PORT --token-file FILE (or COFFER_TOKEN)\n", client, exp.Format(time.RFC3339))
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&dir, "dir", "", "server state directory")
	f.StringVar(&client, "client", "", "client name (a-z, 0-9, '.', '_', '-')")
	f.DurationVar(&ttl, "ttl", admin.DefaultTokenTTL, "how long the token stays valid (at most 720h)")
	return cmd
}
