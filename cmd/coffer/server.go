package main

import (
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"

	"github.com/coffer-backup/coffer/internal/pki"
	"github.com/coffer-backup/coffer/internal/server"
	"github.com/coffer-backup/coffer/internal/serverdb"
	"github.com/coffer-backup/coffer/internal/tlspolicy"
	"github.com/spf13/cobra"
)

// serverCmd is the parent of the storage server's commands; each
// subcommand lives in its own file and adds itself in init.
var serverCmd = &cobra.Command{
	Use:   "server",
	Short: "Run and administer a coffer storage server",
}

func init() {
	rootCmd.AddCommand(serverCmd)
	serverCmd.AddCommand(newServerRunCommand())
}

func newServerRunCommand() *cobra.Command {
	var dir, listen string
	cmd := &cobra.Command{
		Use:   "run --dir DIR [--listen ADDR]",
		Short: "Serve repositories and enrolment on one mutual-TLS port",
		Long: `Run serves the storage API (HTTPS, HTTP/2) on ADDR until interrupted.
Clients must present a certificate issued by the server's CA; refused
handshakes and requests are recorded in the state database.`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if dir == "" {
				return usageErrorf("--dir is required")
			}
			ctx := cmd.Context()
			log := slog.New(slog.NewTextHandler(os.Stderr, nil))
			db, err := serverdb.Open(ctx, filepath.Join(dir, serverdb.DefaultFile))
			if err != nil {
				return err
			}
			defer db.Close()
			srv, err := server.New(server.Config{Dir: dir, DB: db, Logger: log})
			if err != nil {
				return err
			}
			defer srv.Close()
			ca, err := pki.LoadCA(dir)
			if err != nil {
				return err
			}
			kp, err := pki.LoadKeyPair(dir, pki.ServerCertFile, pki.ServerKeyFile)
			if err != nil {
				return err
			}
			policy := tlspolicy.Default()
			conf := policy.ServerConfig(kp.TLSCertificate(ca.Cert), ca.Pool(), srv.VerifyConnection)
			if err := server.CheckTLSConfig(conf); err != nil {
				return err
			}
			inner, err := net.Listen("tcp", listen)
			if err != nil {
				return fmt.Errorf("listen: %w", err)
			}
			ln := policy.Listen(inner, conf, db.RefusalLog(), tlspolicy.ListenerOptions{})
			log.Info("coffer server listening", "addr", inner.Addr().String(), "dir", dir)
			return srv.Serve(ctx, ln)
		},
	}
	f := cmd.Flags()
	f.StringVar(&dir, "dir", "", "server state directory")
	f.StringVar(&listen, "listen", ":7443", "address to listen on")
	return cmd
}
