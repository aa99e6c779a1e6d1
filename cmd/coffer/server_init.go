package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/coffer-backup/coffer/internal/pki"
	"github.com/coffer-backup/coffer/internal/server"
	"github.com/coffer-backup/coffer/internal/server/state"
	"github.com/spf13/cobra"
)

func newServerInitCommand(g *globalOptions) *cobra.Command {
	var (
		dir, listen, storageLoc string
		names                   []string
	)
	cmd := &cobra.Command{
		Use:   "init --dir DIR [--name HOST,...] [--storage s3:https://HOST[:PORT]/BUCKET[/PREFIX]]",
		Short: "Create a server state directory: CA, server certificate, keys, config and database",
		Long: `Init creates DIR (mode 0700) with a new certificate authority (ca.crt,
ca.key), the server's key and certificate (server.crt, server.key) for the
names given with --name (DNS names or IP addresses; default localhost,
127.0.0.1 and ::1), the at-rest key, the policy signing key (policy.key,
policy.pub), the state database and config.json. Key files and the database
are mode 0600. An initialised directory is never overwritten.

It also writes the first fleet administrator's identity to DIR/admin
(client.key mode 0600, client.crt, ca.crt, server, policy.pub): a user
certificate for "admin", role admin, for coffer fleet --identity DIR/admin.
There is no default password. Its server file names the first --name and
the --listen port; pass coffer fleet --server HOST:PORT where that is not
how it is reached.

With --storage, the objects go to an S3 bucket (made if missing) under
PREFIX instead of DIR/objects, still sealed with the at-rest key: one
PREFIX/CLIENT/REPO per repository, the trash under PREFIX/.trash.
Credentials come from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and
AWS_SESSION_TOKEN), or AWS_PROFILE with the shared credentials file, in
init's and every server command's environment; they are never written to
DIR. --cacert (or COFFER_CACERT) names the CA certificates of an https
endpoint; they are copied to DIR/storage-ca.pem. Init checks that the
bucket answers with those credentials before it writes anything.`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			err := requireDir(dir)
			if err != nil {
				return err
			}
			var flat []string
			for _, n := range names {
				for _, p := range strings.Split(n, ",") {
					if p = strings.TrimSpace(p); p != "" {
						flat = append(flat, p)
					}
				}
			}
			opts := state.InitOptions{Names: flat, Listen: listen, Storage: storageLoc}
			if storageLoc != "" {
				if opts.StorageCA, err = server.ProbeStorage(cmd.Context(), storageLoc, g.caCertFile()); err != nil {
					return err
				}
			}
			res, err := state.Init(cmd.Context(), dir, opts)
			if err != nil {
				return err
			}
			if g.json {
				return printJSON(cmd.OutOrStdout(), serverInitJSON{Dir: dir, CAFingerprint: pki.FormatFingerprint(res.CAFingerprint), ServerNames: res.ServerNames,
					ServerCertExpires: res.ServerExpiry, PolicyKeyID: res.PolicyKeyID, AdminIdentity: res.AdminDir, Storage: storageLoc})
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "initialised %s\n", dir)
			if storageLoc != "" {
				fmt.Fprintf(out, "objects in %s (credentials from the environment of every server command)\n", storageLoc)
			}
			fmt.Fprintf(out, "CA fingerprint (SHA-256 of its public key): %s\n", pki.FormatFingerprint(res.CAFingerprint))
			fmt.Fprintf(out, "server certificate for %s, valid until %s\n", strings.Join(res.ServerNames, ", "), res.ServerExpiry.Format(time.DateOnly))
			fmt.Fprintf(out, "policy signing key %s (policy.key, mode 0600; its public half policy.pub)\n", res.PolicyKeyID)
			if res.AdminDir != "" {
				fmt.Fprintf(out, "first administrator's identity (user admin, role admin): %s (client.key mode 0600: keep it as you would a password)\n", res.AdminDir)
			}
			fmt.Fprintf(out, "next: coffer server run --dir %s, then coffer server token --dir %s --client NAME\n", dir, dir)
			if res.AdminDir != "" {
				fmt.Fprintf(out, "fleet: coffer fleet --identity %s user add NAME --role operator --scope group:G\n", res.AdminDir)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&dir, "dir", "", "server state directory to create")
	f.StringSliceVar(&names, "name", nil, "DNS names and IP addresses of the server certificate, comma-separated (default localhost,127.0.0.1,::1)")
	f.StringVar(&listen, "listen", state.DefaultListen, "listen address written to config.json")
	f.StringVar(&storageLoc, "storage", "", "keep the objects in an S3 bucket: s3:https://HOST[:PORT]/BUCKET[/PREFIX] (default: DIR/objects)")
	return cmd
}
