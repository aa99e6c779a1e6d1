package keyring

import (
	"fmt"

	"github.com/coffer-backup/coffer/internal/escrowkey"
)

// EscrowPublicKeySize is the size of an escrow public key's raw form: an
// X25519 public key, as a fleet policy carries it (escrow_public_key).
const EscrowPublicKeySize = 32

// EscrowRecipientFromBytes returns the recipient of a raw X25519 public
// key, the form a fleet policy carries; its String is the same "age1…" key
// `coffer escrow keygen` prints.
func EscrowRecipientFromBytes(pub []byte) (EscrowRecipient, error) {
	if len(pub) != EscrowPublicKeySize {
		return EscrowRecipient{}, fmt.Errorf("%w: %d bytes, an X25519 public key has %d", ErrBadEscrowKey, len(pub), EscrowPublicKeySize)
	}
	text, err := escrowkey.Encode(pub)
	if err != nil {
		return EscrowRecipient{}, fmt.Errorf("%w: %v", ErrBadEscrowKey, err)
	}
	return ParseEscrowRecipient(text)
}

// Bytes returns the raw X25519 public key (nil for the zero value).
func (r EscrowRecipient) Bytes() []byte {
	if r.r == nil {
		return nil
	}
	data, err := escrowkey.Decode(r.r.String())
	if err != nil {
		return nil
	}
	return data
}
