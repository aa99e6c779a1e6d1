package main

import (
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/coffer-backup/coffer/internal/fleet/api"
	"github.com/coffer-backup/coffer/internal/server"
	"github.com/coffer-backup/coffer/internal/server/audit"
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
		newServerAuditCommand(g),
		newServerTrashCommand(g),
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
	var dir, listen, auditSyslog string
	var keepDays, trashDays int
	var offlineAfter, auditTakeover time.Duration
	cmd := &cobra.Command{
		Use:   "run --dir DIR [--listen ADDR] [--keep-days N] [--trash-days N] [--offline-after D] [--audit-syslog NETWORK:ADDRESS] [--audit-takeover D]",
		Short: "Serve repositories and enrollment on one mutual-TLS port",
		Long: `Run serves the storage API (HTTPS, HTTP/2), enrollment and certificate
renewal on one port until interrupted, with the TLS policy of the state
directory's config.json. Clients must present a certificate issued by the
server's CA; refused handshakes and requests are recorded in the state
database (see coffer server tls-report). At start and every 24 hours the
server scans its own port and raises an alert if it offers anything weaker
than its policy. Refusals are kept one record per day, source address and
kind, counting repeats; they and the audit events are deleted after
--keep-days days, once the audit log has them.

Hosts are append-only unless allowed to delete: a prune job the fleet orders
carries a grant naming the snapshot objects the keep rules forget (on the
server's arrival times) and a window for packs and indexes. What a host
deletes under a grant goes to DIR/trash for --trash-days days (coffer server
trash list and restore) before it is gone.

Every audited event is appended to the hash-chained audit log in DIR/audit
(coffer server audit verify checks it). With --audit-syslog each entry is
also sent to syslog as an RFC 5424 message, e.g. --audit-syslog
unixgram:/dev/log or udp:192.0.2.5:514 (udp, tcp, unix, unixgram); a
syslog server that is down never holds the server up: the entries it
misses are counted and logged, and the files keep them. Servers sharing a
PostgreSQL database keep one chain: one of them writes the log, the others
record through the database, and every --audit-takeover (default 5s) a
server checks that it still writes or whether it can take over
(docs/server.md).

An agent that has connected and then had no control connection for
--offline-after (default 45s, three missed pings; at least 10s) raises the
agent-offline alert, once per absence.

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
			if trashDays < 1 {
				return usageErrorf("--trash-days must be at least 1, not %d", trashDays)
			}
			if offlineAfter < 10*time.Second {
				return usageErrorf("--offline-after must be at least 10s, not %s", offlineAfter)
			}
			if auditTakeover < 100*time.Millisecond {
				return usageErrorf("--audit-takeover must be at least 100ms, not %s", auditTakeover)
			}
			log := slog.New(slog.NewTextHandler(os.Stderr, nil))
			if auditSyslog != "" {
				if _, _, err := audit.ParseSyslogAddr(auditSyslog); err != nil {
					return usageErrorf("--audit-syslog: %v", err)
				}
			}
			opts := server.RunOptions{Dir: dir, Listen: listen, Logger: log, KeepDays: keepDays, TrashDays: trashDays, AuditSyslog: auditSyslog, Version: version,
				OfflineAfter: offlineAfter, AuditTakeover: auditTakeover}
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
	f.StringVar(&auditSyslog, "audit-syslog", "", "also send each audit log entry to syslog at NETWORK:ADDRESS (udp:HOST:PORT, tcp:HOST:PORT, unix:PATH, unixgram:PATH)")
	f.IntVar(&keepDays, "keep-days", server.DefaultKeepDays, "days of refused handshakes and requests and of audit events the database keeps")
	f.IntVar(&trashDays, "trash-days", server.DefaultTrashDays, "days objects deleted under a grant stay in the trash")
	f.DurationVar(&offlineAfter, "offline-after", api.OfflineAfter, "how long an agent may be without its control connection before the agent-offline alert")
	f.DurationVar(&auditTakeover, "audit-takeover", server.DefaultAuditTakeover, "with servers sharing a database: how often a server checks that it writes the audit log, or whether it can take over")
	return cmd
}
