// Package keyring holds a repository's key hierarchy: the master secret, the
// key slots that wrap it, the keys derived from it and the data-key terms.
//
// docs/security.md explains the hierarchy; this package is pure (no storage
// calls): it builds and parses the bytes that the repository layer stores.
package keyring

import (
	"bytes"
	"crypto/subtle"
	"errors"
	"fmt"

	"github.com/coffer-backup/coffer/internal/crypto"
)

// MasterSecretSize is the size of a repository's master secret.
const MasterSecretSize = 64

// Repository IDs are opaque random bytes chosen at init; these bounds keep
// hostile slots from carrying absurd IDs.
const (
	MinRepoIDSize = 16
	MaxRepoIDSize = 64
)

// HKDF info strings of the keys derived from the master secret. The salt is
// always the repository ID. They are part of the on-disk format.
const (
	infoKEK     = "coffer/v1/kek"
	infoBlobID  = "coffer/v1/blob-id"
	infoChunker = "coffer/v1/chunker"
)

// Sentinel errors callers branch on.
var (
	// ErrWrongPassword: no key slot opens with the given secret.
	ErrWrongPassword = errors.New("wrong passphrase or recovery key: no key slot opens with it")
	// ErrNoSlots: the repository has no usable key slot at all.
	ErrNoSlots = errors.New("repository has no usable key slot")
	// ErrInvalidSlot: a key slot file is malformed or out of bounds.
	ErrInvalidSlot = errors.New("invalid key slot")
	// ErrInvalidTerm: a keyring term object is malformed or mislabelled.
	ErrInvalidTerm = errors.New("invalid keyring term")
	// ErrUnknownTerm: an object names a key term the keyring does not have.
	ErrUnknownTerm = errors.New("unknown key term")
	// ErrBadRecoveryKey: a string is not a well-formed recovery key.
	ErrBadRecoveryKey = errors.New("invalid recovery key")
	// ErrLastSlot: removing the slot would lock everyone out.
	ErrLastSlot = errors.New("refusing to remove the last key slot")
)

// MasterSecret is the root of a repository's key hierarchy. It is generated
// once at init and only ever stored wrapped inside key slots.
type MasterSecret [MasterSecretSize]byte

// NewMasterSecret returns a fresh master secret from the CSPRNG.
func NewMasterSecret() (MasterSecret, error) {
	var ms MasterSecret
	b, err := crypto.RandomBytes(len(ms))
	if err != nil {
		return MasterSecret{}, fmt.Errorf("generate master secret: %w", err)
	}
	copy(ms[:], b)
	clear(b)
	return ms, nil
}

// Master is an unlocked master secret bound to the repository it belongs to.
// Every derived key takes the repository ID as HKDF salt, so the same master
// secret used for two repositories would still give independent keys.
type Master struct {
	secret MasterSecret
	repoID []byte
}

// NewMaster binds secret to repoID. The repository ID must be 16 to 64 bytes.
func NewMaster(secret MasterSecret, repoID []byte) (*Master, error) {
	if err := checkRepoID(repoID); err != nil {
		return nil, err
	}
	return &Master{secret: secret, repoID: append([]byte(nil), repoID...)}, nil
}

// GenerateMaster creates the master secret of a new repository.
func GenerateMaster(repoID []byte) (*Master, error) {
	ms, err := NewMasterSecret()
	if err != nil {
		return nil, err
	}
	return NewMaster(ms, repoID)
}

func checkRepoID(id []byte) error {
	if len(id) < MinRepoIDSize || len(id) > MaxRepoIDSize {
		return fmt.Errorf("repository ID is %d bytes, want %d to %d", len(id), MinRepoIDSize, MaxRepoIDSize)
	}
	return nil
}

// RepoID returns a copy of the repository ID.
func (m *Master) RepoID() []byte { return append([]byte(nil), m.repoID...) }

// KEK is the key-encryption key: it seals the config object and the keyring
// term objects (as term 0 in their envelope header).
func (m *Master) KEK() crypto.Key { return m.derive(infoKEK) }

// BlobIDKey keys the BLAKE3 hash that names blobs, so blob IDs do not reveal
// the hash of known content.
func (m *Master) BlobIDKey() crypto.Key { return m.derive(infoBlobID) }

// ChunkerKey is the secret that makes chunk boundaries depend on the
// repository, against chunk-size fingerprinting.
func (m *Master) ChunkerKey() crypto.Key { return m.derive(infoChunker) }

func (m *Master) derive(info string) crypto.Key {
	return crypto.DeriveKey(m.secret[:], m.repoID, info)
}

// KEKLookup is a crypto.KeyLookup that knows only term 0, the KEK. Use it to
// open the config and keyring objects, which must never name a data term.
func (m *Master) KEKLookup() crypto.KeyLookup {
	return func(term uint32) (crypto.Key, error) {
		if term != KEKTerm {
			return crypto.Key{}, fmt.Errorf("%w %d: config and keyring objects are sealed under term 0 (the KEK)", ErrUnknownTerm, term)
		}
		return m.KEK(), nil
	}
}

// Equal reports in constant time whether two masters hold the same secret and
// repository ID.
func (m *Master) Equal(o *Master) bool {
	return subtle.ConstantTimeCompare(m.secret[:], o.secret[:]) == 1 && bytes.Equal(m.repoID, o.repoID)
}

// Wipe overwrites the secret in memory. Go may have copied it elsewhere
// (stack, GC moves), so this is best effort; m is unusable afterwards.
func (m *Master) Wipe() {
	clear(m.secret[:])
}
