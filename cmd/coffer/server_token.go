package main

import (
	"errors"
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
		replace     bool
	)
	cmd := &cobra.Command{
		Use:   "token --dir DIR --client NAME [--ttl 15m] [--replace]",
		Short: "Print a one-time enrollment token for a client",
		Long: `Token prints a one-time enrollment token for client NAME on standard output:
it carries the fingerprint of the server's CA and a secret. The server keeps
only a hash of the secret. The token can be redeemed once, before it
expires, with coffer enroll on the client. It works while the server runs.
Hand it over as you would a password.

A client that is already enrolled (active or revoked) gets a token only
with --replace, which says what redeeming it will do: the client's current
certificate is revoked and its name, repositories, quota and allow-delete
setting pass to the new holder.`,
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
			if ttl <= 0 {
				return usageErrorf("--ttl must be positive")
			}
			issued, err := adm.IssueToken(ctx, client, admin.TokenOptions{TTL: ttl, Replace: replace})
			if errors.Is(err, admin.ErrClientExists) {
				return usageErrorf("%v", err)
			}
			if err != nil {
				return err
			}
			if issued.Replaces != nil {
				// Said even with --quiet: the admin must know what the token does.
				fmt.Fprintf(os.Stderr, "replacing: %s\n", admin.ReplaceNote(*issued.Replaces))
			}
			if g.json {
				return printJSON(cmd.OutOrStdout(), serverTokenJSON{Client: client, Token: issued.Token, Expires: issued.Expires.UTC(), Replaces: issued.Replaces != nil})
			}
			fmt.Fprintln(cmd.OutOrStdout(), issued.Token)
			if !g.quiet {
				fmt.Fprintf(os.Stderr, "one-time token for client %q, valid until %s\non the client: coffer enroll --server HOST:PORT --token-file FILE (or COFFER_TOKEN)\n", client, issued.Expires.Format(time.RFC3339))
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&dir, "dir", "", "server state directory")
	f.StringVar(&client, "client", "", "client name (a-z, 0-9, '.', '_', '-')")
	f.DurationVar(&ttl, "ttl", admin.DefaultTokenTTL, "how long the token stays valid (at most 720h)")
	f.BoolVar(&replace, "replace", false, "issue a token for a client that is already enrolled or revoked; redeeming it revokes the current certificate")
	return cmd
}
