package repository

import (
	"context"
	"errors"
	"fmt"

	"github.com/coffer-backup/coffer/internal/crypto"
	"github.com/coffer-backup/coffer/internal/keyring"
)

// ErrEscrowNotPassphrase: ChangePassphrase on a repository opened with an
// escrow key; it would replace the escrow slot with a passphrase slot.
var ErrEscrowNotPassphrase = errors.New("the repository was opened with an escrow key, which has no passphrase to change; add one with key add")

// AddEscrowSlot adds a key slot that seals the master secret to the escrow
// public key r (docs/format.md §3), and returns it. Whoever holds the
// matching private key can then open the repository.
func (r *Repository) AddEscrowSlot(ctx context.Context, rcpt keyring.EscrowRecipient) (*keyring.Slot, error) {
	s, err := keyring.NewEscrowSlot(r.keys.master, rcpt, slotInfo(nil))
	if err != nil {
		return nil, err
	}
	return s, saveSlot(ctx, r.st, s)
}

// opensConfig returns the check OpenWith gives the unlock: a master secret
// from a slot is accepted only if the repository's config opens with it,
// so a slot copied in from another repository is refused and the next one
// tried.
func opensConfig(cfgData []byte) func(*keyring.Master) error {
	return func(m *keyring.Master) error {
		if _, err := crypto.OpenObject(crypto.KindConfig, m.KEKLookup(), m.RepoID(), "config", cfgData); err != nil {
			return fmt.Errorf("open config: %w", err)
		}
		return nil
	}
}
