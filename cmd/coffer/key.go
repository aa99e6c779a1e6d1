package main

import (
	"errors"
	"fmt"
	"os"
	"text/tabwriter"

	"github.com/coffer-backup/coffer/internal/keyring"
	"github.com/coffer-backup/coffer/internal/repository"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

func newKeyCommand(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{Use: "key", Short: "Manage key slots (passphrases, recovery keys, escrow keys) and data-key terms"}
	cmd.AddCommand(newKeyListCommand(g), newKeyAddCommand(g), newKeyRemoveCommand(g), newKeyPasswdCommand(g), newKeyRotateCommand(g))
	return cmd
}

// newPassphraseFlags are the flags of commands that set a new passphrase.
type newPassphraseFlags struct {
	file string
	kdf  kdfFlags
}

func (n *newPassphraseFlags) register(f *pflag.FlagSet) {
	f.StringVar(&n.file, "new-password-file", "", "read the new passphrase from this file")
	n.kdf.register(f)
}

// read validates the KDF flags, then reads the new passphrase.
func (n *newPassphraseFlags) read() ([]byte, keyring.KDFParams, error) {
	p, err := n.kdf.params()
	if err != nil {
		return nil, p, err
	}
	var pass []byte
	if n.file != "" {
		pass, err = readSecretFile(n.file)
	} else {
		pass, err = promptPassword("enter the new passphrase: ", true)
	}
	return pass, p, err
}

func newKeyListCommand(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use: "list", Short: "List key slots", Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.openRepo(cmd.Context())
			if err != nil {
				return err
			}
			defer c.Close()
			repo := c.Repository()
			slots, bad, err := repository.LoadSlots(cmd.Context(), repo.Storage())
			if err != nil {
				return err
			}
			for _, b := range bad {
				warnf("%v", b)
			}
			cur := repo.CurrentSlot().ID
			if g.json {
				out := []keySlotJSON{}
				for _, s := range slots {
					out = append(out, newKeySlotJSON(s, cur))
				}
				return printJSON(cmd.OutOrStdout(), out)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, " \tID\tKind\tUser\tHost\tCreated\tEscrow key")
			for _, s := range slots {
				mark := " "
				if s.ID == cur {
					mark = "*"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", mark, s.ID[:8], s.Kind, s.User, s.Host, s.Created.Local().Format("2006-01-02 15:04:05"), escrowFingerprint(s))
			}
			return tw.Flush()
		},
	}
}

func newKeyAddCommand(g *globalOptions) *cobra.Command {
	var np newPassphraseFlags
	var recoveryFile, escrowPublic string
	cmd := &cobra.Command{
		Use: "add", Short: "Add a passphrase (or a recovery key, or an escrow key)", Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.openRepo(cmd.Context())
			if err != nil {
				return err
			}
			defer c.Close()
			repo := c.Repository()
			if escrowPublic != "" {
				return addEscrowSlot(cmd, g, repo, escrowPublic)
			}
			if recoveryFile != "" {
				// The file is created before the slot, so that no slot is
				// ever written whose key has nowhere to go.
				f, err := createRecoveryKeyFile(recoveryFile)
				if err != nil {
					return err
				}
				k, s, err := repo.AddRecoveryKey(cmd.Context())
				if err != nil {
					_ = f.Close()
					_ = os.Remove(recoveryFile)
					return err
				}
				if err := writeRecoveryKeyTo(f, &k); err != nil {
					return fmt.Errorf("slot %s was added but the key could not be written; remove the slot: %w", s.ID[:8], err)
				}
				g.printf(cmd.OutOrStdout(), "added recovery key slot %s; key written to %s\n", s.ID[:8], recoveryFile)
				return nil
			}
			pass, p, err := np.read()
			if err != nil {
				return err
			}
			defer clear(pass)
			s, err := repo.AddPassphrase(cmd.Context(), pass, p)
			if err != nil {
				return err
			}
			g.printf(cmd.OutOrStdout(), "added key slot %s\n", s.ID[:8])
			return nil
		},
	}
	np.register(cmd.Flags())
	cmd.Flags().StringVar(&recoveryFile, "recovery-key-file", "", "add a recovery key and write it to this file (mode 0600)")
	cmd.Flags().StringVar(&escrowPublic, "escrow-public-key", "", "add an escrow slot sealed to this public key file (from escrow keygen)")
	cmd.MarkFlagsMutuallyExclusive("recovery-key-file", "escrow-public-key")
	cmd.MarkFlagsMutuallyExclusive("new-password-file", "escrow-public-key")
	return cmd
}

func newKeyRemoveCommand(g *globalOptions) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use: "remove ID", Short: "Remove a key slot (never the one in use or the last one)", Args: usageArgs(cobra.ExactArgs(1)),
		Long: `Remove the key slot whose ID starts with ID. The slot that opened the
repository is never removed (open it with another passphrase, recovery key
or escrow key to remove this one), nor the last slot; the last passphrase
slot, the last recovery slot and the last escrow slot go only with --force.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.openRepo(cmd.Context())
			if err != nil {
				return err
			}
			defer c.Close()
			repo := c.Repository()
			id, err := resolveSlot(cmd, repo, args[0])
			if err != nil {
				return err
			}
			if err := repo.RemoveSlot(cmd.Context(), id, force); err != nil {
				return err
			}
			g.printf(cmd.OutOrStdout(), "removed key slot %s\n", id[:8])
			return nil
		},
	}
	cmd.Flags().BoolVar(&force, "force", false, "remove the last slot of its kind (passphrase, recovery or escrow)")
	return cmd
}

func newKeyPasswdCommand(g *globalOptions) *cobra.Command {
	var np newPassphraseFlags
	cmd := &cobra.Command{
		Use: "passwd", Short: "Change the passphrase of the slot in use", Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.openRepo(cmd.Context())
			if err != nil {
				return err
			}
			defer c.Close()
			repo := c.Repository()
			pass, p, err := np.read()
			if err != nil {
				return err
			}
			defer clear(pass)
			s, err := repo.ChangePassphrase(cmd.Context(), pass, p)
			if err != nil {
				return err
			}
			g.printf(cmd.OutOrStdout(), "passphrase changed (new key slot %s)\n", s.ID[:8])
			return nil
		},
	}
	np.register(cmd.Flags())
	return cmd
}

func newKeyRotateCommand(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use: "rotate", Short: "Start a new data-key term; old data stays readable", Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.openRepo(cmd.Context())
			if err != nil {
				return err
			}
			defer c.Close()
			repo := c.Repository()
			unlock, err := g.lockRepo(cmd.Context(), c, "key rotate", true, false)
			if err != nil {
				return err
			}
			defer unlock()
			t, err := repo.RotateKey(cmd.Context())
			if err != nil {
				return err
			}
			if err := c.RecordTerm(); err != nil {
				warnf("cannot record the new term: %v", err)
			}
			if g.json {
				return printJSON(cmd.OutOrStdout(), keyRotateJSON{Term: t.Number, Created: t.Created})
			}
			g.printf(cmd.OutOrStdout(), "new data-key term %d; new data is sealed with it, older terms stay readable\n", t.Number)
			return nil
		},
	}
}

// addEscrowSlot is key add --escrow-public-key.
func addEscrowSlot(cmd *cobra.Command, g *globalOptions, repo *repository.Repository, path string) error {
	r, err := readEscrowPublicKey(path)
	if err != nil {
		return err
	}
	s, err := repo.AddEscrowSlot(cmd.Context(), r)
	if err != nil {
		return err
	}
	g.printf(cmd.OutOrStdout(), "added escrow key slot %s for %s\n", s.ID[:8], r.Fingerprint())
	return nil
}

// escrowFingerprint is the fingerprint of an escrow slot's public key, ""
// for other slots.
func escrowFingerprint(s *keyring.Slot) string {
	if s.Kind != keyring.SlotEscrow {
		return ""
	}
	return keyring.EscrowFingerprint(s.Recipient)
}

func newKeySlotJSON(s *keyring.Slot, cur string) keySlotJSON {
	return keySlotJSON{ID: s.ID, Current: s.ID == cur, Kind: string(s.Kind), Created: s.Created, Host: s.Host, User: s.User,
		EscrowPublicKey: s.Recipient, EscrowFingerprint: escrowFingerprint(s)}
}

func resolveSlot(cmd *cobra.Command, repo *repository.Repository, prefix string) (string, error) {
	slots, _, err := repository.LoadSlots(cmd.Context(), repo.Storage())
	if err != nil {
		return "", err
	}
	var found *keyring.Slot
	for _, s := range slots {
		if len(prefix) >= 4 && len(prefix) <= len(s.ID) && s.ID[:len(prefix)] == prefix {
			if found != nil {
				return "", fmt.Errorf("key slot prefix %q is ambiguous", prefix)
			}
			found = s
		}
	}
	if found == nil {
		return "", errors.New("no key slot matches " + prefix)
	}
	return found.ID, nil
}
