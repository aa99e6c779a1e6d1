package main

import (
	"context"
	"log/slog"
	"os"

	"github.com/coffer-backup/coffer/internal/agent"
	"github.com/spf13/cobra"
)

// newAgentCommand is the parent of the agent's commands.
func newAgentCommand(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "agent",
		Short: "Run the fleet agent: scheduled backups under the server's signed policy",
	}
	cmd.AddCommand(newAgentRunCommand(g))
	return cmd
}

func newAgentRunCommand(g *globalOptions) *cobra.Command {
	var identity, keyFile string
	var inPlace bool
	cmd := &cobra.Command{
		Use:   "run [--identity DIR] [--password-file F] [--key-file F] [--allow-restore-in-place]",
		Short: "Hold the control connection and run the policy's jobs until stopped",
		Long: `Run is the fleet agent, a long-running service (see
packaging/systemd/coffer-agent.service). It keeps one connection to the
server the identity enrolled with (DIR/server), on the same port and
certificate as backups, receives the server's signed policy and ordered
jobs (run-now, restore, cancel) and reports every job's state.

Each policy is verified against the key pinned at enrollment
(DIR/policy.pub) and cached in DIR/policy.json; a policy with a bad
signature, for another host, or older than the one held is refused and
reported. While the server is unreachable the agent keeps its schedule on
the cached policy, for every repository it can still reach, and keeps the
reports in DIR/reports (bounded; the oldest dropped, with a count) until
the server is back.

A repository that does not exist is created at its first backup, with a
random host key written to --key-file (default DIR/repo.key, mode 0600):
that file opens the repository by hand too (COFFER_PASSWORD_FILE=F). With
--password-file (or COFFER_PASSWORD_FILE) that secret opens and creates the
repositories instead. Restores must target a directory under the policy's
restore root (default /var/restore) unless --allow-restore-in-place.

--limit-upload and --limit-download bound every job's transfers.

SIGINT or SIGTERM cancels running jobs, which release their locks, and
stops within a second or two; exit status 0.`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if identity == "" {
				identity = identityDir()
			}
			cfg := agent.Config{IdentityDir: identity, KeyFile: keyFile, AllowRestoreInPlace: inPlace, Version: version,
				Logger: slog.New(slog.NewTextHandler(os.Stderr, nil)), BeforeKDF: g.beforeKDF, AfterUnlock: g.afterUnlock,
				LimitUpload: g.limitUpload, LimitDownload: g.limitDownload}
			if f := g.agentPasswordFile(); f != "" {
				cfg.Secret = func(context.Context) ([]byte, error) { return readSecretFile(f) }
				cfg.SecretSource = "password file " + f
			}
			return agent.Run(cmd.Context(), cfg)
		},
	}
	f := cmd.Flags()
	f.StringVar(&identity, "identity", "", "identity directory (default $COFFER_IDENTITY or ~/.config/coffer/identity)")
	f.StringVar(&keyFile, "key-file", "", "the host key that creates and opens the repositories (default DIR/repo.key, made mode 0600 at the first backup)")
	f.BoolVar(&inPlace, "allow-restore-in-place", false, "let the server order restores outside the policy's restore root")
	return cmd
}

// agentPasswordFile is --password-file, else COFFER_PASSWORD_FILE: the
// agent runs unattended, so it reads no terminal and runs no command.
func (g *globalOptions) agentPasswordFile() string {
	if g.passwordFile != "" {
		return g.passwordFile
	}
	return os.Getenv("COFFER_PASSWORD_FILE")
}
