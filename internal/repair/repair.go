// Package repair rebuilds what damage left behind: the index from the
// packs' own directories, and snapshots without the files whose data is lost.
package repair

import (
	"context"
	"errors"
	"slices"
	"sync"

	"github.com/coffer-backup/coffer/internal/repository"
	"github.com/coffer-backup/coffer/internal/storage"
	"golang.org/x/sync/errgroup"
)

// PackError is a stored pack whose directory could not be read.
type PackError struct {
	Pack repository.ID `json:"pack"`
	Err  string        `json:"error"`
}

// IndexResult is what RebuildIndex found and wrote.
type IndexResult struct {
	Packs       int         `json:"packs"`        // packs indexed
	Blobs       int         `json:"blobs"`        // blobs indexed
	BadPacks    []PackError `json:"bad_packs"`    // packs left out
	FilesBefore int         `json:"index_before"` // index files replaced
	Written     int         `json:"index_written"`
	Removed     int         `json:"index_removed"`
	DryRun      bool        `json:"dry_run"`
}

// RebuildIndex replaces every index file with one index set built from
// the directories of the stored packs (restic's `repair index`). The new
// set supersedes every file it replaces and every file those superseded,
// also the ones that do not open (docs/format.md §6), then the replaced
// files are removed. Packs whose directory cannot be read are left out and
// reported: prune treats them as unindexed. The caller holds an exclusive
// lock, so no backup is writing packs meanwhile. With dryRun nothing is
// written.
func RebuildIndex(ctx context.Context, r *repository.Repository, dryRun bool, log func(string, ...any)) (*IndexResult, error) {
	res := &IndexResult{DryRun: dryRun}
	old, err := r.ListIDs(ctx, storage.KindIndex)
	if err != nil {
		return nil, err
	}
	res.FilesBefore = len(old)
	supersedes := map[repository.ID]bool{}
	for _, id := range old {
		supersedes[id] = true
		if f, err := r.LoadIndexFile(ctx, id); err == nil {
			for _, s := range f.Supersedes {
				supersedes[s] = true
			}
		} else if !repository.Unreadable(err) && !errors.Is(err, storage.ErrNotFound) {
			return nil, err
		}
	}
	packs, err := readDirectories(ctx, r, res, log)
	if err != nil {
		return nil, err
	}
	if dryRun {
		return res, nil
	}
	ids, _, err := r.SaveIndexSet(ctx, sortedIDs(supersedes), packs, repository.DefaultIndexFileBlobs)
	res.Written = len(ids)
	if err != nil {
		return res, err
	}
	for _, id := range old {
		err := r.Storage().Remove(ctx, storage.Handle{Kind: storage.KindIndex, Name: id.String()})
		if err != nil && !errors.Is(err, storage.ErrNotFound) {
			log("warning: cannot remove replaced index %s (it stays superseded): %v", id.Short(), err)
			continue
		}
		res.Removed++
	}
	return res, nil
}

// readDirectories reads the directory of every stored pack.
func readDirectories(ctx context.Context, r *repository.Repository, res *IndexResult, log func(string, ...any)) ([]repository.IndexPack, error) {
	var listed []storage.FileInfo
	err := r.Storage().List(ctx, storage.KindData, func(fi storage.FileInfo) error {
		listed = append(listed, fi)
		return nil
	})
	if err != nil {
		return nil, err
	}
	var mu sync.Mutex
	var packs []repository.IndexPack
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for i, fi := range listed {
		id, err := repository.ParseID(fi.Name)
		if err != nil {
			continue
		}
		g.Go(func() error {
			if i%500 == 0 {
				log("reading pack directories: %d of %d", i+1, len(listed))
			}
			entries, err := r.ReadPackDirectory(gctx, id, fi.Size)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				if gctx.Err() != nil {
					return gctx.Err()
				}
				res.BadPacks = append(res.BadPacks, PackError{Pack: id, Err: err.Error()})
				return nil
			}
			packs = append(packs, repository.IndexPack{ID: id, Blobs: entries})
			res.Packs++
			res.Blobs += len(entries)
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	slices.SortFunc(packs, func(a, b repository.IndexPack) int { return slices.Compare(a.ID[:], b.ID[:]) })
	slices.SortFunc(res.BadPacks, func(a, b PackError) int { return slices.Compare(a.Pack[:], b.Pack[:]) })
	return packs, nil
}

func sortedIDs(m map[repository.ID]bool) []repository.ID {
	out := make([]repository.ID, 0, len(m))
	for id := range m {
		out = append(out, id)
	}
	slices.SortFunc(out, func(a, b repository.ID) int { return slices.Compare(a[:], b[:]) })
	return out
}
