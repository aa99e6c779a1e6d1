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

// planOldTerms counts the forget and condemned records and the snapshots
// sealed with an older term.
func (p *Plan) planOldTerms(ctx context.Context) error {
	r := p.st.r
	p.CurrentTerm = r.CurrentTerm()
	for _, k := range []storage.Kind{storage.KindForgets, storage.KindCondemned, storage.KindSnapshots} {
		old, err := oldTermIDs(ctx, r, k, p.CurrentTerm)
		if err != nil {
			return err
		}
		if k == storage.KindSnapshots {
			p.RewriteSnapshots = len(old)
		} else {
			p.RewriteRecords += len(old)
		}
	}
	return nil
}

// rewriteOldTerms runs after packs and index files were rewritten: it
// re-seals forget and condemned records and replaces snapshots sealed with
// an older term, then reports by kind what still is on an older term.
func (x *execution) rewriteOldTerms(ctx context.Context) error {
	r := x.s.r
	current := r.CurrentTerm()
	x.rep.CurrentTerm = current
	for _, k := range []storage.Kind{storage.KindForgets, storage.KindCondemned} {
		old, err := oldTermIDs(ctx, r, k, current)
		if err != nil {
			return err
		}
		for _, id := range old {
			if _, err := r.ResealRecord(ctx, k, id); err != nil {
				if errors.Is(err, storage.ErrNotFound) {
					continue
				}
				return fmt.Errorf("re-seal %s/%s: %w", k, id.Short(), err)
			}
			x.rep.RewrittenRecords++
		}
	}
	snaps, err := oldTermIDs(ctx, r, storage.KindSnapshots, current)
	if err != nil {
		return err
	}
	if len(snaps) > 0 {
		m, err := r.ReplaceSnapshots(ctx, repository.Hostname(), snaps)
		if err != nil {
			return fmt.Errorf("replace snapshots: %w", err)
		}
		x.rep.RewrittenSnapshots = len(m)
		x.rep.ReplacedSnapshots = make(map[string]string, len(m))
		for o, n := range m {
			x.rep.ReplacedSnapshots[o.String()] = n.String()
		}
		x.s.o.Log("re-sealed %d snapshots under new IDs", len(m))
	}
	left, err := OldTermObjects(ctx, r)
	if err != nil {
		return err
	}
	if len(left) > 0 {
		x.rep.OldTermObjects = left
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
