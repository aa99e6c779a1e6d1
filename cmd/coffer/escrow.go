package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/coffer-backup/coffer/internal/atomicfile"
	"github.com/coffer-backup/coffer/internal/client"
	"github.com/coffer-backup/coffer/internal/keyring"
	"github.com/spf13/cobra"
)

func newEscrowCommand(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{Use: "escrow", Short: "Make escrow key pairs (an offline key that opens every repository with its slot)"}
	cmd.AddCommand(newEscrowKeygenCommand(g))
	return cmd
}

// escrowKeygenJSON is escrow keygen's --json output.
type escrowKeygenJSON struct {
	PublicKey     string `json:"public_key"`
	Fingerprint   string `json:"fingerprint"`
	IdentityFile  string `json:"identity_file"`
	PublicKeyFile string `json:"public_key_file"`
}

func newEscrowKeygenCommand(g *globalOptions) *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use: "keygen --out FILE", Short: "Make an escrow key pair: FILE (private, mode 0600) and FILE.pub", Args: usageArgs(cobra.NoArgs),
		Long: `Make an X25519 key pair in age's format. The private key goes to FILE
(mode 0600, never over an existing file), the public key to FILE.pub and to
standard output. Add it to a repository with key add --escrow-public-key
FILE.pub; open the repository with --escrow-key FILE (or
COFFER_ESCROW_KEY_FILE). Whoever holds FILE opens every repository that has
a slot for it: keep it offline.`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return usageErrorf("escrow keygen needs --out FILE")
			}
			pub := out + ".pub"
			for _, p := range []string{out, pub} {
				if _, err := os.Lstat(p); err == nil {
					return fmt.Errorf("%s already exists; refusing to overwrite it", p)
				}
			}
			id, err := keyring.GenerateEscrowIdentity()
			if err != nil {
				return err
			}
			r := id.Recipient()
			if err := atomicfile.WriteNew(out, id.MarshalFile(time.Now()), 0o600); err != nil {
				return fmt.Errorf("write escrow key: %w", err)
			}
			if err := atomicfile.WriteNew(pub, []byte(r.String()+"\n"), 0o644); err != nil {
				return fmt.Errorf("private key written to %s, but the public key could not be: %w", out, err)
			}
			if g.json {
				return printJSON(cmd.OutOrStdout(), escrowKeygenJSON{r.String(), r.Fingerprint(), out, pub})
			}
			fmt.Fprintln(cmd.OutOrStdout(), r.String())
			if !g.quiet {
				fmt.Fprintf(os.Stderr, "escrow key %s: private key in %s (keep it offline), public key in %s\n", r.Fingerprint(), out, pub)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&out, "out", "", "write the private key to this file and the public key to FILE.pub")
	return cmd
}

// openCredential is how commands that open a repository unlock it, in
// order: --escrow-key, then the passphrase flags (--password-file,
// --password-command), then COFFER_ESCROW_KEY_FILE, then the passphrase
// environment and prompt of credential(). A flag beats the environment.
func (g *globalOptions) openCredential(prompt string) client.Credential {
	path, source := g.escrowKey, g.flagName("escrow-key")+" "+g.escrowKey
	if path == "" && g.passwordFile == "" && g.passwordCommand == "" {
		path = g.getenv("ESCROW_KEY_FILE")
		source = g.envName("ESCROW_KEY_FILE") + "=" + path
	}
	if path == "" {
		return g.credential(prompt, false)
	}
	return client.Credential{Source: source, Escrow: func(context.Context) (*keyring.EscrowIdentity, error) {
		return readEscrowKey(path)
	}}
}

// readEscrowKey reads an escrow identity file, warning (as for password
// files) when others can read it.
func readEscrowKey(path string) (*keyring.EscrowIdentity, error) {
	f, err := os.Open(path) // #nosec G304 G703 -- the user names the key file
	if err != nil {
		return nil, fmt.Errorf("read escrow key: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, keyring.MaxEscrowKeyFile+1))
	if err != nil {
		return nil, fmt.Errorf("read escrow key: %w", err)
	}
	id, err := keyring.ParseEscrowIdentity(b)
	clear(b)
	if err != nil {
		return nil, fmt.Errorf("escrow key file %s: %w", path, err)
	}
	if fi, err := f.Stat(); err == nil && fi.Mode().Perm()&0o077 != 0 {
		warnf("escrow key file %s can be read by others (mode %04o): chmod 600 %s", path, fi.Mode().Perm(), path)
	}
	return id, nil
}

// readEscrowPublicKey reads a public-key file as escrow keygen writes it.
func readEscrowPublicKey(path string) (keyring.EscrowRecipient, error) {
	f, err := os.Open(path) // #nosec G304 G703 -- the user names the key file
	if err != nil {
		return keyring.EscrowRecipient{}, fmt.Errorf("read escrow public key: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, keyring.MaxEscrowKeyFile+1))
	if err != nil {
		return keyring.EscrowRecipient{}, fmt.Errorf("read escrow public key: %w", err)
	}
	r, err := keyring.ParseEscrowRecipientFile(b)
	if errors.Is(err, keyring.ErrBadEscrowKey) {
		return r, fmt.Errorf("escrow public key file %s: %w", path, err)
	}
	return r, err
}
