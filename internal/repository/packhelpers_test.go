package repository

import (
	"bytes"
	"fmt"

	"github.com/coffer-backup/coffer/internal/crypto"
)

// Test helpers: a pack assembled in memory, and a whole-pack check run on
// those bytes through the reader's own parsing (NewPackReader,
// ParseDirectory, openBlob), so the tests can damage a pack and see the
// reader refuse it. Backups commit packs with commitPack instead.

// Finish lays the blobs out in random order, appends the padded directory
// and returns the pack bytes and its entries (with offsets filled in). The
// writer cannot be used afterwards.
func (w *PackWriter) Finish() ([]byte, []PackEntry, error) {
	p, err := w.finishStream()
	if err != nil {
		return nil, nil, err
	}
	defer p.Close()
	data, err := p.Bytes(nil)
	if err != nil {
		return nil, nil, err
	}
	return data, p.entries, nil
}

// VerifyPack parses a complete pack and checks every blob against entries
// (when given) and the hasher.
func VerifyPack(id ID, data []byte, keys crypto.KeyLookup, repoID []byte, hasher *BlobHasher, want []PackEntry) error {
	if len(data) < crypto.HeaderSize+4 {
		return fmt.Errorf("pack %s: %w: truncated", id.Short(), ErrCorruptPack)
	}
	r, err := NewPackReader(id, data[:crypto.HeaderSize], keys, repoID)
	if err != nil {
		return err
	}
	entries, err := r.ParseDirectory(data, int64(len(data)))
	if err != nil {
		return err
	}
	if want != nil && len(entries) != len(want) {
		return fmt.Errorf("pack %s: %w: %d entries, wrote %d", id.Short(), ErrCorruptPack, len(entries), len(want))
	}
	// One blob at a time through two scratch buffers: the check must not
	// hold a second copy of the pack.
	var plainBuf, outBuf []byte
	for i, e := range entries {
		if want != nil && e != want[i] {
			return fmt.Errorf("pack %s: %w: entry %d differs from what was written", id.Short(), ErrCorruptPack, i)
		}
		plain, p, err := r.openBlob(e, data[e.Offset:e.Offset+e.Length], plainBuf[:0], outBuf[:0])
		if err != nil {
			return err
		}
		if cap(p) > cap(plainBuf) {
			plainBuf = p
		}
		if len(plain) > 0 && cap(plain) > cap(outBuf) && (len(p) < 2 || &plain[0] != &p[1]) {
			outBuf = plain
		}
		if got := hasher.Sum(plain); !bytes.Equal(got[:], e.ID[:]) {
			return fmt.Errorf("pack %s: %w: blob %s hashes to %s", id.Short(), ErrCorruptPack, e.ID.Short(), got.Short())
		}
	}
	return nil
}
