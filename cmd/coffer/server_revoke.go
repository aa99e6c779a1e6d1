package main

import (
	"github.com/coffer-backup/coffer/internal/server/admin"
	"github.com/spf13/cobra"
)

func newServerRevokeCommand(g *globalOptions) *cobra.Command {
	var dir, client, reason string
	cmd := &cobra.Command{
		Use:   "revoke --dir DIR --client NAME",
		Short: "Revoke every certificate of a client",
		Long: `Revoke marks the client revoked and adds its certificate to the revocation
list. A running server picks it up within a second, for new connections,
resumed sessions and open connections alike. A new token for the same name
enrolls the client again with a new certificate.`,
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
			if err := adm.Revoke(ctx, client, reason); err != nil {
				return err
			}
			g.printf(cmd.OutOrStdout(), "revoked client %q\n", client)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&dir, "dir", "", "server state directory")
	f.StringVar(&client, "client", "", "client name")
	f.StringVar(&reason, "reason", "", "reason, kept in the audit log")
	return cmd
}
