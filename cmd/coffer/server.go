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
		newServerReplicateCommand(g),
		newServerSeedCommand(g),
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
	var keepDays int
	cmd := &cobra.Command{
		Use:   "run --dir DIR [--listen ADDR] [--keep-days N]",
		Short: "Serve repositories and enrollment on one mutual-TLS port",
		Long: `Run serves the storage API (HTTPS, HTTP/2), enrollment and certificate
renewal on one port until interrupted, with the TLS policy of the state
directory's config.json. Clients must present a certificate issued by the
server's CA; refused handshakes and requests are recorded in the state
database (see coffer server tls-report). At start and every 24 hours the
server scans its own port and raises an alert if it offers anything weaker
than its policy. Refusals are kept one record per day, source address and
kind, counting repeats; they and the audit events are deleted after
--keep-days days.

Run refuses to start when a key file or the database is accessible to group
or others, or when the directory belongs to another user.`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := requireDir(dir); err != nil {
				return err
			}
			if keepDays < 1 {
				return usageErrorf("--keep-days must be at least 1, not %d", keepDays)
			}
			log := slog.New(slog.NewTextHandler(os.Stderr, nil))
			opts := server.RunOptions{Dir: dir, Listen: listen, Logger: log, KeepDays: keepDays, Version: version}
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
	f.IntVar(&keepDays, "keep-days", server.DefaultKeepDays, "days of refused handshakes and requests and of audit events the database keeps")
	return cmd
}
