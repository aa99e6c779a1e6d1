package repository

import (
	"cmp"
	"context"
	"fmt"
	"slices"

	"github.com/coffer-backup/coffer/internal/crypto"
	"github.com/coffer-backup/coffer/internal/padding"
	"github.com/coffer-backup/coffer/internal/storage"
)

// This file holds what check and prune (internal/check, internal/maintenance)
// need beyond the backup path: writing packs outside SaveBlob's dedup, and
// replacing the in-memory index with one built from chosen index files.

// UseIndex replaces the in-memory master index. Check uses it to read trees
// through an index built from the index files that decoded, and prune to read
// blobs of every indexed pack (condemned ones included). It must not be
// called while blobs are being written or read.
func (r *Repository) UseIndex(idx *MasterIndex) {
	r.idx = idx
}

// CurrentTerm is the key term new objects are sealed with.
func (r *Repository) CurrentTerm() uint32 {
	t, _ := r.keys.current()
	return t
}

// NewPackWriter starts a pack sealed with the current term and the
// repository's compression. Unlike SaveBlob, blobs added to it are not
// deduplicated against the index: prune uses it to copy live blobs out of
// packs it is about to delete.
func (r *Repository) NewPackWriter() (*PackWriter, error) {
	term, key := r.keys.current()
	return NewPackWriter(r.cipher, term, key, r.id, r.compress)
}

// SavePack finishes pw, parses the result back and checks every blob
// (VerifyPack: the restic #4523 guard), then stores it. It returns the
// pack's index entry and its size. The pack is in no index file yet: the
// caller writes one.
func (r *Repository) SavePack(ctx context.Context, pw *PackWriter) (IndexPack, int64, error) {
	data, entries, err := pw.Finish()
	if err != nil {
		return IndexPack{}, 0, err
	}
	if err := VerifyPack(pw.ID, data, r.keys.lookup, r.id, r.hasher, entries); err != nil {
		return IndexPack{}, 0, fmt.Errorf("read-back check of new pack failed, nothing was committed: %w", err)
	}
	if err := r.st.Save(ctx, storage.Handle{Kind: storage.KindData, Name: pw.ID.String()}, data); err != nil {
		return IndexPack{}, 0, fmt.Errorf("save pack %s: %w", pw.ID.Short(), err)
	}
	return IndexPack{ID: pw.ID, Blobs: entries}, int64(len(data)), nil
}

// OpenPackHeader loads a pack's envelope header and returns a reader for it
// (its Term says which key sealed it).
func (r *Repository) OpenPackHeader(ctx context.Context, pack ID) (*PackReader, error) {
	hdr, err := r.st.Load(ctx, storage.Handle{Kind: storage.KindData, Name: pack.String()}, 0, crypto.HeaderSize)
	if err != nil {
		return nil, fmt.Errorf("load pack %s: %w", pack.Short(), err)
	}
	return NewPackReader(pack, hdr, r.keys.lookup, r.id)
}

// ExpectedPackSize returns the size a pack holding exactly these entries has
// (docs/format.md §5: header, contiguous blob segments, sealed padded
// directory, length). It returns -1 when the entries are not contiguous from
// the header on, which no writer produces.
func ExpectedPackSize(entries []PackEntry) int64 {
	sorted := slices.Clone(entries)
	slices.SortFunc(sorted, func(a, b PackEntry) int { return cmp.Compare(a.Offset, b.Offset) })
	end := int64(crypto.HeaderSize)
	for _, e := range sorted {
		if int64(e.Offset) != end {
			return -1
		}
		end += int64(e.Length)
	}
	unpadded := end + 5 + int64(len(entries))*packEntrySize + crypto.Overhead + 4
	return padding.Padme(unpadded)
}
