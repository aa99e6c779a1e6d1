package main

import (
	"fmt"
	"net/http"
	"os"

	"github.com/coffer-backup/coffer/internal/fleet/api"
	"github.com/coffer-backup/coffer/internal/keyring"
	"github.com/spf13/cobra"
)

func newFleetEscrowCommand(g *globalOptions, o *fleetOptions) *cobra.Command {
	cmd := &cobra.Command{Use: "escrow", Short: "Set the escrow public key every host's repository also seals its key to"}
	var pubFile string
	set := &cobra.Command{
		Use:   "set --public-key FILE.pub",
		Short: "Put an escrow public key (from coffer escrow keygen) into every policy",
		Long: `Set puts the public key of an escrow key pair (coffer escrow keygen --out F
writes F.pub) into every host's policy; each agent then adds a key slot
sealed to it. Whoever holds the private half opens every such repository
(--escrow-key F); the server never can: it only ever sees the public key.`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if pubFile == "" {
				return usageErrorf("--public-key FILE.pub is required")
			}
			data, err := os.ReadFile(pubFile) // #nosec G304 -- the user names the key file
			if err != nil {
				return fmt.Errorf("read escrow public key: %w", err)
			}
			r, err := keyring.ParseEscrowRecipientFile(data)
			if err != nil {
				return usageErrorf("%s: %v", pubFile, err)
			}
			if err := o.do(cmd.Context(), http.MethodPut, api.EscrowPath, api.EscrowSet{PublicKey: r.String()}, nil); err != nil {
				return err
			}
			g.printf(cmd.OutOrStdout(), "escrow key %s is now in every policy\n", r.Fingerprint())
			return nil
		},
	}
	set.Flags().StringVar(&pubFile, "public-key", "", "the escrow public key file (FILE.pub of coffer escrow keygen)")
	cmd.AddCommand(set)
	return cmd
}
