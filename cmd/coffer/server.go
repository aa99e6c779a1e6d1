package main

import (
	"fmt"
	"log/slog"
	"os"

	"github.com/coffer-backup/coffer/internal/server"
	"github.com/spf13/cobra"
)

// newServerCommand is the parent of the storage server's commands; each
// subcommand lives in its own file.
func newServerCommand(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Run and administer a coffer storage server",
	}
	cmd.AddCommand(
		newServerRunCommand(),
		newServerInitCommand(g),
		newServerTokenCommand(g),
		newServerClientsCommand(g),
		newServerClientCommand(g),
		newServerRevokeCommand(g),
		newServerScrubCommand(g),
		newServerTLSReportCommand(g),
	)
	return cmd
}

// requireDir checks the --dir flag every server command needs.
func requireDir(dir string) error {
	if dir == "" {
		return usageErrorf("--dir is required")
	}
	return nil
}

func newServerRunCommand() *cobra.Command {
	var dir, listen string
	cmd := &cobra.Command{
		Use:   "run --dir DIR [--listen ADDR]",
		Short: "Serve repositories and enrollment on one mutual-TLS port",
		Long: `Run serves the storage API (HTTPS, HTTP/2), enrollment and certificate
renewal on one port until interrupted, with the TLS policy of the state
directory's config.json. Clients must present a certificate issued by the
server's CA; refused handshakes and requests are recorded in the state
database (see coffer server tls-report). At start and every 24 hours the
server scans its own port and raises an alert if it offers anything weaker
than its policy.

Run refuses to start when a key file or the database is accessible to group
or others, or when the directory belongs to another user.`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := requireDir(dir); err != nil {
				return err
			}
			log := slog.New(slog.NewTextHandler(os.Stderr, nil))
			opts := server.RunOptions{Dir: dir, Listen: listen, Logger: log}
			// For benchmarks: one JSON line per request with its latency.
			if p := os.Getenv("COFFER_SERVER_REQUEST_LOG"); p != "" {
				f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600) // #nosec G304 G703 -- the operator names the log file
				if err != nil {
					return fmt.Errorf("request log: %w", err)
				}
				defer f.Close()
				opts.RequestLog = f
			}
			return server.Run(cmd.Context(), opts)
		},
	}
	f := cmd.Flags()
	f.StringVar(&dir, "dir", "", "server state directory")
	f.StringVar(&listen, "listen", "", `address to listen on (default: "listen" of config.json, normally :7443)`)
	return cmd
}
