package repository

import (
	"crypto/subtle"
	"errors"
	"fmt"

	"github.com/coffer-backup/coffer/internal/crypto"
)

// SharedKeys are the two keys that decide a repository's blob IDs and
// chunk boundaries (docs/format.md §2). A repository made with
// `init --copy-chunker-params` keeps another repository's in its config
// (format version 2) instead of deriving its own, so both cut the same
// data into the same blobs under the same IDs and `copy` moves blobs
// without re-chunking. Nothing else is shared: each repository keeps its
// own master secret, data keys and key slots.
type SharedKeys struct {
	BlobID  []byte `json:"blob_id"` // BlobIDKey, 32 bytes
	Chunker []byte `json:"chunker"` // ChunkerKey, 32 bytes
	// From is the ID of the repository the keys were copied from
	// (descriptive only).
	From string `json:"from"`
}

// ErrBadSharedKeys: a config's shared keys are malformed.
var ErrBadSharedKeys = errors.New("invalid shared keys in the config")

func (k *SharedKeys) validate() error {
	if len(k.BlobID) != crypto.KeySize || len(k.Chunker) != crypto.KeySize {
		return fmt.Errorf("%w: keys of %d and %d bytes, want %d", ErrBadSharedKeys, len(k.BlobID), len(k.Chunker), crypto.KeySize)
	}
	if _, err := ParseID(k.From); err != nil && k.From != "" {
		return fmt.Errorf("%w: from %q is not a repository ID", ErrBadSharedKeys, k.From)
	}
	return nil
}

// ShareKeys returns this repository's blob-ID and chunker keys, for
// InitOptions.Shared of a repository that is to deduplicate with it.
// They are secrets: hand them only to a repository whose key holders may
// hold them (docs/security.md §4).
func (r *Repository) ShareKeys() *SharedKeys {
	b, c := r.hasher.key, r.keys.chunker
	return &SharedKeys{BlobID: b[:], Chunker: c[:], From: r.cfg.ID}
}

// SharesBlobIDs reports whether r and o name and cut data alike: the same
// blob-ID key, chunker key and chunker parameters. Then a blob of o is a
// blob of r under the same ID, and a file backed up to both is stored as
// the same blobs.
func (r *Repository) SharesBlobIDs(o *Repository) bool {
	if r.cfg.Chunker != o.cfg.Chunker {
		return false
	}
	rb, ob := r.hasher.key, o.hasher.key
	rc, oc := r.keys.chunker, o.keys.chunker
	return subtle.ConstantTimeCompare(rb[:], ob[:])&subtle.ConstantTimeCompare(rc[:], oc[:]) == 1
}

// SharedKeysFrom returns the ID of the repository whose blob-ID and
// chunker keys this one uses, and true; or "", false when it derives its
// own.
func (r *Repository) SharedKeysFrom() (string, bool) {
	if r.cfg.Shared == nil {
		return "", false
	}
	return r.cfg.Shared.From, true
}
