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
		maxObjects, maxRepos  int64
	)
	cmd := &cobra.Command{
		Use:   "client --dir DIR --client NAME [--allow-delete|--no-allow-delete] [--quota SIZE] [--max-objects N] [--max-repos N]",
		Short: "Show or change what a client may do: deletion, quota and object counts",
		Long: `Client shows a client and changes its policy. Clients are append-only by
default: they add objects and never delete or overwrite them (except their
own lock files). --allow-delete lets the client delete, for instance for the
time of a prune; --no-allow-delete makes it append-only again. --quota
bounds the bytes it stores over all its repositories ("500G"; 0 for none);
every object counts at least 4 KiB and every repository 64 KiB against it.
--max-objects and --max-repos cap how many objects and repositories the
client may hold, quota or not (0: the server's defaults, 1,000,000 objects
and 100 repositories). Changes take effect on a running server within a second and are recorded in
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
			ch := admin.PolicyChange{AllowDelete: del, Quota: q}
			for _, l := range []struct {
				flag string
				v    *int64
				dst  **int64
			}{{"max-objects", &maxObjects, &ch.MaxObjects}, {"max-repos", &maxRepos, &ch.MaxRepos}} {
				if !cmd.Flags().Changed(l.flag) {
					continue
				}
				if *l.v < 0 {
					return usageErrorf("--%s must be 0 (the server's default) or more", l.flag)
				}
				*l.dst = l.v
			}
			ctx := cmd.Context()
			adm, err := admin.Open(ctx, dir)
			if err != nil {
				return err
			}
			defer adm.Close()
			c, err := adm.SetClientPolicy(ctx, client, ch)
			if err != nil {
				return err
			}
			if g.json {
				return printJSON(cmd.OutOrStdout(), toClientJSON(c))
			}
			if err := printClients(cmd.OutOrStdout(), []serverdb.Client{c}); err != nil {
				return err
			}
			if ch != (admin.PolicyChange{}) {
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
	f.Int64Var(&maxObjects, "max-objects", 0, "cap on the client's objects (0: the server's default)")
	f.Int64Var(&maxRepos, "max-repos", 0, "cap on the client's repositories (0: the server's default)")
	return cmd
}
