package main

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/coffer-backup/coffer/internal/pki"
	"github.com/coffer-backup/coffer/internal/pki/enroll"
	"github.com/spf13/cobra"
)

func newEnrollCommand(g *globalOptions) *cobra.Command {
	var (
		serverAddr, token, tokenFile, identity string
		force                                  bool
	)
	cmd := &cobra.Command{
		Use:   "enroll --server HOST:PORT [--token-file FILE | --token T] [--identity DIR]",
		Short: "Enroll this client with a coffer server using a one-time token",
		Long: `Enroll makes this client's key pair (the private key never leaves this
machine), checks that the server at HOST:PORT holds the CA whose fingerprint
the token carries (before sending anything), then sends the token and a
certificate request and receives the client certificate. It writes DIR
(default $COFFER_IDENTITY or ~/.config/coffer/identity): client.key (mode
0600), client.crt and ca.crt, as PEM, server (the HOST:PORT enrolled with)
and, from a server with a fleet, policy.pub (the key its policies are
signed with, pinned). From then on the client trusts only that CA for
coffer:// repositories, and renews its certificate by itself.

A person's token (from coffer fleet user add) gives a user certificate for
coffer fleet commands; it opens no repository.

A server that is limiting enrollment attempts (HTTP 429) is asked again
after the time it names, up to 6 attempts; the token is not used by a
refused attempt.

The token is read from --token-file, or COFFER_TOKEN; --token works too but
shows the token to other users of this machine.`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if serverAddr == "" {
				return usageErrorf("--server HOST:PORT is required")
			}
			if _, _, err := net.SplitHostPort(serverAddr); err != nil {
				return usageErrorf("--server %q is not HOST:PORT: %v", serverAddr, err)
			}
			raw, err := enrollToken(token, tokenFile)
			if err != nil {
				return err
			}
			tok, err := pki.ParseToken(strings.TrimSpace(raw))
			if err != nil {
				return err
			}
			dir := identity
			if dir == "" {
				dir = identityDir()
			}
			if !force {
				for _, f := range []string{pki.ClientKeyFile, pki.ClientCertFile} {
					if _, err := os.Lstat(filepath.Join(dir, f)); err == nil {
						return usageErrorf("%s already holds an identity; use --force to replace it, or --identity for another directory", dir)
					}
				}
			}
			opts := enroll.Options{Waiting: func(attempt int, wait time.Duration) {
				if !g.quiet {
					fmt.Fprintf(os.Stderr, "the server is limiting enrollment attempts (attempt %d of %d refused); retrying in %s\n", attempt, enroll.DefaultAttempts, wait)
				}
			}}
			id, err := enroll.Enroll(cmd.Context(), serverAddr, tok, opts)
			if errors.Is(err, pki.ErrFingerprintMismatch) || errors.Is(err, pki.ErrServerNotTrusted) {
				return fmt.Errorf("refusing to enroll, nothing was sent: the server at %s is not the one the token was issued for: %w", serverAddr, err)
			}
			if err != nil {
				return err
			}
			if err := enroll.SaveIdentity(dir, serverAddr, id); err != nil {
				return err
			}
			who, renew := fmt.Sprintf("%q", id.ClientName), ", renewed automatically"
			if id.User {
				who, renew = fmt.Sprintf("user %q (for coffer fleet; a user certificate opens no repository)", id.ClientName), ""
			}
			g.printf(cmd.OutOrStdout(), "enrolled as %s with %s; identity written to %s (certificate valid until %s%s)\nCA fingerprint (SHA-256 of its public key, as the token required): %s\n",
				who, serverAddr, dir, id.NotAfter.Local().Format(time.DateTime), renew, pki.FormatFingerprint(tok.CAFingerprint))
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&serverAddr, "server", "", "the coffer server, HOST:PORT")
	f.StringVar(&token, "token", "", "the one-time token (prefer --token-file or COFFER_TOKEN: arguments are visible to other users)")
	f.StringVar(&tokenFile, "token-file", "", "read the one-time token from this file")
	f.StringVar(&identity, "identity", "", "identity directory (default $COFFER_IDENTITY or ~/.config/coffer/identity)")
	f.BoolVar(&force, "force", false, "replace an existing identity")
	return cmd
}

// enrollToken returns the token from --token-file, --token (with a warning)
// or COFFER_TOKEN.
func enrollToken(token, tokenFile string) (string, error) {
	switch {
	case tokenFile != "" && token != "":
		return "", usageErrorf("give the token once: --token-file or --token")
	case tokenFile != "":
		b, err := os.ReadFile(tokenFile) // #nosec G304 -- the user names the token file
		if errors.Is(err, fs.ErrNotExist) {
			return "", usageErrorf("token file %s does not exist", tokenFile)
		}
		if err != nil {
			return "", fmt.Errorf("read token file: %w", err)
		}
		return string(b), nil
	case token != "":
		warnf("--token shows the token to other users of this machine; prefer --token-file or COFFER_TOKEN")
		return token, nil
	case os.Getenv("COFFER_TOKEN") != "":
		return os.Getenv("COFFER_TOKEN"), nil
	}
	return "", usageErrorf("no token: use --token-file FILE or set COFFER_TOKEN")
}
