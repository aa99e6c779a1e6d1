package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/coffer-backup/coffer/internal/pki"
	"github.com/coffer-backup/coffer/internal/server"
	"github.com/coffer-backup/coffer/internal/server/state"
	"github.com/coffer-backup/coffer/internal/serverdb"
	"github.com/spf13/cobra"
)

func newServerInitCommand(g *globalOptions) *cobra.Command {
	var (
		dir, listen, storageLoc, dbURL, dbPasswordFile string
		names                                          []string
	)
	cmd := &cobra.Command{
		Use:   "init --dir DIR [--name HOST,...] [--storage s3:https://HOST[:PORT]/BUCKET[/PREFIX]] [--db postgres://USER@HOST[:PORT]/DB --db-password-file FILE]",
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
bucket answers with those credentials before it writes anything.

With --db, the state database is that PostgreSQL database instead of
DIR/state.db, and several servers can share it: run init once, then run
each further server from a copy of DIR (docs/server.md). The URL holds no
password (one that does is refused); --db-password-file copies the
password (the file's first line; the file must be mode 0600) to
DIR/db.password, mode 0600.`,
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
			if opts.Database, opts.DatabasePassword, err = initDatabaseFlags(dbURL, dbPasswordFile); err != nil {
				return err
			}
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
	f.StringVar(&dbURL, "db", "", "PostgreSQL URL of the state database, postgres://USER@HOST[:PORT]/DB[?sslmode=...], without a password (default: DIR/state.db)")
	f.StringVar(&dbPasswordFile, "db-password-file", "", "file whose first line is the database password, copied to DIR/db.password")
	return cmd
}

// initDatabaseFlags checks --db and reads --db-password-file: the URL and
// the password for state.InitOptions.
func initDatabaseFlags(dbURL, passwordFile string) (string, string, error) {
	if dbURL == "" {
		if passwordFile != "" {
			return "", "", usageErrorf("--db-password-file needs --db")
		}
		return "", "", nil
	}
	if _, err := serverdb.ParsePostgresURL(dbURL); err != nil {
		return "", "", usageErrorf("--db: %v", err)
	}
	if passwordFile == "" {
		return dbURL, "", nil
	}
	pw, err := state.ReadPasswordFile(passwordFile)
	return dbURL, pw, err
}
