package repository

import (
	"context"
	"errors"
	"fmt"

	"github.com/coffer-backup/coffer/internal/crypto"
	"github.com/coffer-backup/coffer/internal/keyring"
	"github.com/coffer-backup/coffer/internal/padding"
	"github.com/coffer-backup/coffer/internal/storage"
	"github.com/dustin/go-humanize"
)

// ErrTooLarge reports a stored object larger than anything coffer writes of
// its kind (docs/format.md §12). It is refused before it is read, so a
// hostile storage cannot make the client allocate or read without bound.
var ErrTooLarge = errors.New("object is larger than the limit for its kind")

// sealedOverhead is what sealing adds to a single-segment object.
const sealedOverhead = crypto.HeaderSize + crypto.Overhead

// Limits on objects read whole, by kind (docs/format.md §12). Each is the
// largest object coffer's own writers can produce, with room to spare.
const (
	maxConfigObject    = 64 << 10
	maxLockObject      = 64 << 10
	maxSnapshotObject  = maxSnapshotSize + sealedOverhead
	maxForgetObject    = 64 << 20
	maxCondemnedObject = 64 << 20
	// maxSupersedes is the room an index file keeps for its supersedes
	// list: 2^20 replaced files, far more than a prune ever replaces.
	maxSupersedes = 1 << 20
	// minPackedBlob is the least a blob adds to a pack: its sealed
	// segment (nonce, encoding byte, tag) and its directory entry.
	minPackedBlob = crypto.Overhead + 1 + packEntrySize
)

// MaxPackBlobs is the most blobs a pack closed at packSize bytes can hold:
// the packer closes a pack once it reaches packSize, and every blob takes at
// least minPackedBlob bytes.
func MaxPackBlobs(packSize int) int64 { return int64(packSize)/minPackedBlob + 1 }

// MaxPackSize is the largest pack a repository with the given pack size
// writes: the packer closes a pack once it holds packSize bytes, so the
// last blob (at most MaxBlobSize, sealed) can overshoot it, the directory
// adds one entry per blob, and Padmé padding adds under 12 %.
func MaxPackSize(packSize int) int64 {
	dir := MaxPackBlobs(packSize)*packEntrySize + 1 + 4 + crypto.Overhead + 4
	return padding.Padme(crypto.HeaderSize + int64(packSize) + MaxBlobSize + 1 + crypto.Overhead + dir)
}

// MaxIndexObject is the largest index file a repository with the given pack
// size writes: SaveIndexSet puts at most DefaultIndexFileBlobs blobs in a
// file, unless a single pack holds more (MaxPackBlobs), and every pack
// listing costs its ID and count besides its entries.
func MaxIndexObject(packSize int) int64 {
	blobs := max(int64(DefaultIndexFileBlobs), MaxPackBlobs(packSize))
	return sealedOverhead + 1 + 4 + maxSupersedes*IDSize + 4 + blobs*(IDSize+4+packEntrySize)
}

// objectLimit returns the size limit of whole objects of kind k in r.
func (r *Repository) objectLimit(k storage.Kind) int64 {
	switch k {
	case storage.KindConfig:
		return maxConfigObject
	case storage.KindKeys:
		return keyring.MaxSlotSize
	case storage.KindKeyring:
		return keyring.MaxTermObjectSize
	case storage.KindData:
		return MaxPackSize(r.cfg.PackSize)
	case storage.KindIndex:
		return MaxIndexObject(r.cfg.PackSize)
	case storage.KindSnapshots:
		return maxSnapshotObject
	case storage.KindLocks:
		return maxLockObject
	case storage.KindForgets:
		return maxForgetObject
	case storage.KindCondemned:
		return maxCondemnedObject
	}
	return 0
}

// loadWhole reads object h whole after checking its size against limit.
// size is its size as listed, or negative to ask the storage (one Stat).
// It reads exactly that many bytes, so an object that grows after the
// check is read only up to the checked size (and then fails to open).
func loadWhole(ctx context.Context, st storage.Storage, h storage.Handle, size, limit int64) ([]byte, error) {
	if size < 0 {
		fi, err := st.Stat(ctx, h)
		if err != nil {
			return nil, fmt.Errorf("load %s: %w", h, err)
		}
		size = fi.Size
	}
	if err := CheckSize(h, size, limit); err != nil {
		return nil, err
	}
	if size == 0 {
		return []byte{}, nil
	}
	b, err := st.Load(ctx, h, 0, size)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", h, err)
	}
	return b, nil
}

// CheckSize returns an ErrTooLarge error naming h when size exceeds limit.
func CheckSize(h storage.Handle, size, limit int64) error {
	if size > limit {
		return fmt.Errorf("%s is %d bytes: %w (%s)", h, size, ErrTooLarge, humanize.IBytes(uint64(limit))) // #nosec G115 -- limits are positive
	}
	return nil
}

// LoadObject reads the object h whole, refusing it if it is larger than any
// object coffer writes of its kind (ErrTooLarge). size is its size if the
// caller listed it, or negative.
func (r *Repository) LoadObject(ctx context.Context, h storage.Handle, size int64) ([]byte, error) {
	return loadWhole(ctx, r.st, h, size, r.objectLimit(h.Kind))
}

// ObjectLimit returns the largest object of kind k that r reads whole.
func (r *Repository) ObjectLimit(k storage.Kind) int64 { return r.objectLimit(k) }
