package maintenance

import (
	"context"
	"fmt"

	"github.com/coffer-backup/coffer/internal/fsmeta"
	"github.com/coffer-backup/coffer/internal/repository"
)

// RepoStats describes snapshots' size as restored and as stored.
type RepoStats struct {
	Snapshots int `json:"snapshots"`
	// Restore size: every snapshot counted in full, as `restore` writes it.
	Files       uint64 `json:"files"`
	Dirs        uint64 `json:"dirs"`
	Others      uint64 `json:"others"`
	RestoreSize uint64 `json:"restore_size"`
	// Raw data: the unique blobs the snapshots reference.
	DataBlobs  int    `json:"data_blobs"`
	TreeBlobs  int    `json:"tree_blobs"`
	RawSize    uint64 `json:"raw_size"`    // plaintext bytes of the unique blobs
	StoredSize uint64 `json:"stored_size"` // their sealed, compressed bytes in packs
	// CompressionRatio is RawSize / StoredSize (0 with nothing stored).
	CompressionRatio float64 `json:"compression_ratio"`
	// MissingBlobs counts referenced blobs the index does not know.
	MissingBlobs int `json:"missing_blobs,omitempty"`
}

type treeTotals struct {
	files, dirs, others, size uint64
}

// Stats walks the trees of snaps (each tree once) and sums what they would
// restore and what their unique blobs occupy. The index must be loaded.
func Stats(ctx context.Context, r *repository.Repository, snaps []*repository.Snapshot) (*RepoStats, error) {
	st := &RepoStats{Snapshots: len(snaps)}
	memo := map[repository.ID]treeTotals{}
	blobs := map[repository.BlobHandle]struct{}{}
	var visit func(id repository.ID) (treeTotals, error)
	visit = func(id repository.ID) (treeTotals, error) {
		if t, ok := memo[id]; ok {
			return t, nil
		}
		if err := ctx.Err(); err != nil {
			return treeTotals{}, err
		}
		tree, err := r.LoadTree(ctx, id)
		if err != nil {
			return treeTotals{}, fmt.Errorf("tree %s: %w", id.Short(), err)
		}
		blobs[repository.BlobHandle{Type: repository.TreeBlob, ID: id}] = struct{}{}
		var tot treeTotals
		for _, n := range tree.Nodes {
			switch n.Type {
			case fsmeta.TypeFile:
				tot.files++
				tot.size += uint64(max(n.Size, 0))
			case fsmeta.TypeDir:
				tot.dirs++
			default:
				tot.others++
			}
			for _, c := range n.Content {
				if c.ID != nil {
					blobs[repository.BlobHandle{Type: repository.DataBlob, ID: *c.ID}] = struct{}{}
				}
			}
			if n.Subtree != nil {
				sub, err := visit(*n.Subtree)
				if err != nil {
					return treeTotals{}, err
				}
				tot.files += sub.files
				tot.dirs += sub.dirs
				tot.others += sub.others
				tot.size += sub.size
			}
		}
		memo[id] = tot
		return tot, nil
	}
	for _, s := range snaps {
		t, err := visit(s.Tree)
		if err != nil {
			return nil, fmt.Errorf("snapshot %s: %w", s.ID.Short(), err)
		}
		st.Files += t.files
		st.Dirs += t.dirs
		st.Others += t.others
		st.RestoreSize += t.size
	}
	idx := r.Index()
	for h := range blobs {
		if h.Type == repository.TreeBlob {
			st.TreeBlobs++
		} else {
			st.DataBlobs++
		}
		locs := idx.Lookup(h)
		if len(locs) == 0 {
			st.MissingBlobs++
			continue
		}
		st.RawSize += uint64(locs[0].RawLen)
		st.StoredSize += uint64(locs[0].Length)
	}
	if st.StoredSize > 0 {
		st.CompressionRatio = float64(st.RawSize) / float64(st.StoredSize)
	}
	return st, nil
}
