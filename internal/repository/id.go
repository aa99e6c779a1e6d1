// Package repository implements coffer's on-disk format (docs/format.md):
// packs, indexes, snapshots, trees, locks, and the repository that ties them.
package repository

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strings"
	"sync"

	"github.com/coffer-backup/coffer/internal/crypto"
	"github.com/zeebo/blake3"
)

// IDSize is the size of blob, pack, index and snapshot IDs.
const IDSize = 32

// ID names a blob (keyed BLAKE3 of its plaintext) or an object (random).
type ID [IDSize]byte

// String returns the ID as 64 lowercase hex characters.
func (id ID) String() string { return hex.EncodeToString(id[:]) }

// Short returns the first 8 hex characters, for display.
func (id ID) Short() string { return id.String()[:8] }

// IsNull reports whether id is all zero.
func (id ID) IsNull() bool { return id == ID{} }

// ParseID parses 64 hex characters.
func ParseID(s string) (ID, error) {
	var id ID
	if len(s) != 2*IDSize {
		return id, fmt.Errorf("invalid ID %q: want %d hex characters", s, 2*IDSize)
	}
	if _, err := hex.Decode(id[:], []byte(s)); err != nil {
		return id, fmt.Errorf("invalid ID %q: %w", s, err)
	}
	if strings.ToLower(s) != s {
		return id, fmt.Errorf("invalid ID %q: must be lowercase", s)
	}
	return id, nil
}

// MarshalText encodes the ID as hex (JSON strings).
func (id ID) MarshalText() ([]byte, error) { return []byte(id.String()), nil }

// UnmarshalText decodes a hex ID.
func (id *ID) UnmarshalText(b []byte) error {
	x, err := ParseID(string(b))
	if err != nil {
		return err
	}
	*id = x
	return nil
}

// NewRandomID returns a random ID, used to name packs, indexes and snapshots.
func NewRandomID() ID {
	var id ID
	if _, err := rand.Read(id[:]); err != nil {
		panic("crypto/rand: " + err.Error())
	}
	return id
}

// BlobHasher computes keyed blob IDs. It is safe for concurrent use.
type BlobHasher struct {
	key  crypto.Key
	pool sync.Pool // *blake3.Hasher keyed with key, reset after each use
}

// NewBlobHasher returns a hasher keyed with the repository's BlobIDKey.
func NewBlobHasher(key crypto.Key) *BlobHasher {
	b := &BlobHasher{key: key}
	b.pool.New = func() any {
		h, err := blake3.NewKeyed(b.key[:])
		if err != nil {
			panic("blake3: " + err.Error())
		}
		return h
	}
	return b
}

// Sum returns the keyed BLAKE3-256 of data.
func (b *BlobHasher) Sum(data []byte) ID {
	h := b.pool.Get().(*blake3.Hasher)
	_, _ = h.Write(data)
	var id ID
	h.Sum(id[:0])
	h.Reset() // back to the keyed initial state
	b.pool.Put(h)
	return id
}

// BlobType distinguishes file content from trees.
type BlobType uint8

// Blob types; values are stored in packs and indexes.
const (
	DataBlob BlobType = 1
	TreeBlob BlobType = 2
)

func (t BlobType) String() string {
	switch t {
	case DataBlob:
		return "data"
	case TreeBlob:
		return "tree"
	}
	return fmt.Sprintf("blobtype(%d)", uint8(t))
}

// Valid reports whether t is a known blob type.
func (t BlobType) Valid() bool { return t == DataBlob || t == TreeBlob }

// BlobHandle identifies a blob by type and ID.
type BlobHandle struct {
	Type BlobType
	ID   ID
}
