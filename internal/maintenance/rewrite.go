package maintenance

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/coffer-backup/coffer/internal/repository"
	"github.com/coffer-backup/coffer/internal/storage"
	"golang.org/x/sync/errgroup"
)

// termKinds are the kinds whose objects are sealed with a data-key term.
// config and keyring/* are sealed with the KEK (term 0) by design, and key
// slots are not envelopes.
var termKinds = []storage.Kind{storage.KindData, storage.KindIndex, storage.KindSnapshots,
	storage.KindLocks, storage.KindForgets, storage.KindCondemned}

// rewriteOldTerms runs after packs and index files were rewritten: it
// re-seals forget and condemned records and replaces snapshots sealed with
// an older term (with DryRun it only counts them), then reports by kind
// what still is on an older term.
func (p *pruner) rewriteOldTerms(ctx context.Context) error {
	current := p.r.CurrentTerm()
	p.rep.CurrentTerm = current
	for _, k := range []storage.Kind{storage.KindForgets, storage.KindCondemned} {
		old, err := oldTermIDs(ctx, p.r, k, current)
		if err != nil {
			return err
		}
		if p.o.DryRun {
			p.rep.RewrittenRecords += len(old)
			continue
		}
		for _, id := range old {
			if _, err := p.r.ResealRecord(ctx, k, id); err != nil {
				if errors.Is(err, storage.ErrNotFound) {
					continue
				}
				return fmt.Errorf("re-seal %s/%s: %w", k, id.Short(), err)
			}
			p.rep.RewrittenRecords++
		}
	}
	snaps, err := oldTermIDs(ctx, p.r, storage.KindSnapshots, current)
	if err != nil {
		return err
	}
	if p.o.DryRun {
		p.rep.RewrittenSnapshots = len(snaps)
	} else if len(snaps) > 0 {
		m, err := p.r.ReplaceSnapshots(ctx, repository.Hostname(), snaps)
		if err != nil {
			return fmt.Errorf("replace snapshots: %w", err)
		}
		p.rep.RewrittenSnapshots = len(m)
		p.rep.ReplacedSnapshots = make(map[string]string, len(m))
		for o, n := range m {
			p.rep.ReplacedSnapshots[o.String()] = n.String()
		}
		p.o.Log("re-sealed %d snapshots under new IDs", len(m))
	}
	if p.o.DryRun {
		return nil
	}
	left, err := OldTermObjects(ctx, p.r)
	if err != nil {
		return err
	}
	if len(left) > 0 {
		p.rep.OldTermObjects = left
	}
	return nil
}

// objectTerms reads the envelope header of every object of a kind and
// returns their terms. Objects removed meanwhile are left out.
func objectTerms(ctx context.Context, r *repository.Repository, k storage.Kind) (map[repository.ID]uint32, error) {
	ids, err := r.ListIDs(ctx, k)
	if err != nil {
		return nil, err
	}
	var mu sync.Mutex
	out := make(map[repository.ID]uint32, len(ids))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for _, id := range ids {
		g.Go(func() error {
			h, err := r.ObjectHeader(gctx, storage.Handle{Kind: k, Name: id.String()})
			if errors.Is(err, storage.ErrNotFound) {
				return nil
			}
			if err != nil {
				return err
			}
			mu.Lock()
			out[id] = h.Term
			mu.Unlock()
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return out, nil
}

func oldTermIDs(ctx context.Context, r *repository.Repository, k storage.Kind, current uint32) ([]repository.ID, error) {
	terms, err := objectTerms(ctx, r, k)
	if err != nil {
		return nil, err
	}
	var old []repository.ID
	for id, t := range terms {
		if t < current {
			old = append(old, id)
		}
	}
	slices.SortFunc(old, cmpID)
	return old, nil
}

// OldTermObjects counts, by storage kind, the objects whose envelope header
// names a term older than the current one. config and keyring/* (term 0 by
// design) are not counted. Headers are read, not authenticated: this is a
// report, not a check.
func OldTermObjects(ctx context.Context, r *repository.Repository) (map[string]int, error) {
	current := r.CurrentTerm()
	out := map[string]int{}
	for _, k := range termKinds {
		terms, err := objectTerms(ctx, r, k)
		if err != nil {
			return nil, err
		}
		for _, t := range terms {
			if t < current {
				out[string(k)]++
			}
		}
	}
	return out, nil
}
