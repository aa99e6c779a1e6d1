package main

import (
	"github.com/coffer-backup/coffer/internal/bytesize"
	"github.com/coffer-backup/coffer/internal/server"
	"github.com/coffer-backup/coffer/internal/server/admin"
	"github.com/coffer-backup/coffer/internal/serverdb"
	"github.com/spf13/cobra"
)

func newServerClientCommand(g *globalOptions) *cobra.Command {
	var (
		dir, client, quota    string
		allowDelete, noDelete bool
	)
	cmd := &cobra.Command{
		Use:   "client --dir DIR --client NAME [--allow-delete|--no-allow-delete] [--quota SIZE]",
		Short: "Show or change what a client may do: deletion and quota",
		Long: `Client shows a client and changes its policy. Clients are append-only by
default: they add objects and never delete or overwrite them (except their
own lock files). --allow-delete lets the client delete, for instance for the
time of a prune; --no-allow-delete makes it append-only again. --quota
bounds the bytes it stores over all its repositories ("500G"; 0 for none).
Changes take effect on a running server within a second and are recorded in
the audit log.`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := requireDir(dir); err != nil {
				return err
			}
			if client == "" {
				return usageErrorf("--client is required")
			}
			if allowDelete && noDelete {
				return usageErrorf("--allow-delete and --no-allow-delete exclude each other")
			}
			var del *bool
			switch {
			case allowDelete:
				del = &allowDelete
			case noDelete:
				f := false
				del = &f
			}
			var q *int64
			if cmd.Flags().Changed("quota") {
				n, err := bytesize.Parse(quota)
				if err != nil {
					return usageErrorf("--quota: %v", err)
				}
				q = &n
			}
			ctx := cmd.Context()
			adm, err := admin.Open(ctx, dir)
			if err != nil {
				return err
			}
			defer adm.Close()
			c, err := adm.SetClientPolicy(ctx, client, del, q)
			if err != nil {
				return err
			}
			if g.json {
				return printJSON(cmd.OutOrStdout(), toClientJSON(c))
			}
			if err := printClients(cmd.OutOrStdout(), []serverdb.Client{c}); err != nil {
				return err
			}
			if del != nil || q != nil {
				g.printf(cmd.OutOrStdout(), "a running server applies the change within its refresh interval (%v); no restart needed\n", server.DefaultRefreshInterval)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&dir, "dir", "", "server state directory")
	f.StringVar(&client, "client", "", "client name")
	f.BoolVar(&allowDelete, "allow-delete", false, "allow the client to delete objects")
	f.BoolVar(&noDelete, "no-allow-delete", false, "make the client append-only again")
	f.StringVar(&quota, "quota", "", `storage quota over all the client's repositories ("500G"; 0: none)`)
	return cmd
}
