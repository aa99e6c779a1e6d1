package repository

import (
	"cmp"
	"context"
	"encoding/binary"
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
// blobs of every indexed pack (condemned ones included). It is safe to call
// while blobs are read or written: each lookup sees the old or the new index
// whole, never a mix. Blobs a writer added to the old index before the swap
// are in storage but not in the new index unless its index files name them.
func (r *Repository) UseIndex(idx *MasterIndex) {
	r.idx.Store(idx)
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

// SavePack finishes pw, reads every blob back and checks it, then stores
// the pack (commitPack). It returns the pack's index entry and its size.
// The pack is in no index file yet: the caller writes one.
func (r *Repository) SavePack(ctx context.Context, pw *PackWriter) (IndexPack, int64, error) {
	var scratch commitScratch
	entries, size, err := r.commitPack(ctx, pw, &scratch)
	if err != nil {
		return IndexPack{}, 0, err
	}
	return IndexPack{ID: pw.ID, Blobs: entries}, size, nil
}

// OpenPackHeader loads a pack's envelope header and returns a reader for it
// (its Term says which key sealed it).
func (r *Repository) OpenPackHeader(ctx context.Context, pack ID) (*PackReader, error) {
	hdr, err := r.st.Load(ctx, storage.Handle{Kind: storage.KindData, Name: pack.String()}, 0, crypto.HeaderSize)
	if err != nil {
		return nil, err // names the pack already
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

// DefaultIndexFileBlobs is how many blobs one index file written by
// SaveIndexSet holds at most (unless a single pack has more): about 47 MB
// of plaintext, far below maxIndexEntries, which readers enforce.
const DefaultIndexFileBlobs = 1 << 20

// SplitIndex cuts packs, in order, into groups of at most maxBlobs blobs.
// A pack is never split between groups (readers take the first listing of
// a pack they meet); a pack with more than maxBlobs blobs forms a group of
// its own. No packs give one empty group. maxBlobs < 1 means 1.
func SplitIndex(packs []IndexPack, maxBlobs int) [][]IndexPack {
	maxBlobs = max(maxBlobs, 1)
	out := [][]IndexPack{nil}
	n := 0
	for _, p := range packs {
		last := len(out) - 1
		if len(out[last]) > 0 && n+len(p.Blobs) > maxBlobs {
			out = append(out, nil)
			last++
			n = 0
		}
		out[last] = append(out[last], p)
		n += len(p.Blobs)
	}
	return out
}

// SaveIndexSet stores packs as one or more index files of at most maxBlobs
// blobs each (SplitIndex) that together replace the index files named in
// supersedes (docs/format.md §6). Every file but the last is written
// without a supersedes list; the last one, written only once all the
// others are stored, lists all of supersedes and so commits the set. If
// the process stops before that, the files written so far supersede
// nothing and name only stored packs: readers see the old index plus
// duplicate listings, which is complete. It returns the files and their
// IDs in writing order, the committing file last.
func (r *Repository) SaveIndexSet(ctx context.Context, supersedes []ID, packs []IndexPack, maxBlobs int) ([]ID, []*IndexFile, error) {
	groups := SplitIndex(packs, maxBlobs)
	ids := make([]ID, 0, len(groups))
	files := make([]*IndexFile, 0, len(groups))
	for i, g := range groups {
		f := &IndexFile{Packs: g}
		if i == len(groups)-1 {
			f.Supersedes = slices.Clone(supersedes)
		}
		id, err := r.SaveIndexFile(ctx, f)
		if err != nil {
			return ids, files, fmt.Errorf("index file %d of %d: %w", i+1, len(groups), err)
		}
		ids = append(ids, id)
		files = append(files, f)
	}
	return ids, files, nil
}

// maxDirectoryBytes bounds the sealed directory ReadPackDirectory loads:
// far above what a pack of the largest configured size holds.
const maxDirectoryBytes = 64 << 20

// ReadPackDirectory reads a stored pack's own directory (its header and
// its tail, not its blobs), for rebuilding the index. size is the pack's
// stored size as listed.
func (r *Repository) ReadPackDirectory(ctx context.Context, pack ID, size int64) ([]PackEntry, error) {
	h := storage.Handle{Kind: storage.KindData, Name: pack.String()}
	if size < crypto.HeaderSize+4 {
		return nil, fmt.Errorf("pack %s: %w: %d bytes", pack.Short(), ErrCorruptPack, size)
	}
	hdr, err := r.st.Load(ctx, h, 0, crypto.HeaderSize)
	if err != nil {
		return nil, err
	}
	pr, err := NewPackReader(pack, hdr, r.keys.lookup, r.id)
	if err != nil {
		return nil, err
	}
	last, err := r.st.Load(ctx, h, size-4, 4)
	if err != nil {
		return nil, err
	}
	n := int64(binary.BigEndian.Uint32(last))
	if n > maxDirectoryBytes || n+4+crypto.HeaderSize > size {
		return nil, fmt.Errorf("pack %s: %w: directory length %d out of range", pack.Short(), ErrCorruptPack, n)
	}
	tail, err := r.st.Load(ctx, h, size-4-n, n+4)
	if err != nil {
		return nil, err
	}
	return pr.ParseDirectory(tail, size)
}
