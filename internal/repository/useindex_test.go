package repository

import (
	"context"
	"fmt"
	"sync"
	"testing"
)

// TestUseIndexConcurrent swaps the index (UseIndex and LoadIndex) while
// other goroutines read and write blobs. Under -race it fails if the swap
// is not synchronised; without it, it fails if a reader ever sees an index
// that lacks a blob every index it could see holds.
func TestUseIndexConcurrent(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := testRepo(t)
	r.StartWriting(ctx)
	var ids []ID
	for i := range 20 {
		id, _, err := r.SaveBlob(ctx, DataBlob, fmt.Appendf(nil, "blob %d", i))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := r.LoadIndex(ctx); err != nil {
		t.Fatal(err)
	}
	full := r.Index()
	const rounds = 200
	var wg sync.WaitGroup
	errs := make(chan error, 3)
	wg.Add(3)
	go func() { // swaps between two complete indexes
		defer wg.Done()
		for range rounds {
			r.UseIndex(full)
			if err := r.LoadIndex(ctx); err != nil {
				errs <- err
				return
			}
		}
	}()
	go func() { // reads every blob through whichever index is current
		defer wg.Done()
		for i := range rounds {
			if _, err := r.LoadBlob(ctx, DataBlob, ids[i%len(ids)]); err != nil {
				errs <- fmt.Errorf("round %d: %w", i, err)
				return
			}
		}
	}()
	go func() { // deduplicates against whichever index is current
		defer wg.Done()
		r.StartWriting(ctx)
		for i := range rounds {
			if _, isNew, err := r.SaveBlob(ctx, DataBlob, fmt.Appendf(nil, "blob %d", i%len(ids))); err != nil || isNew {
				errs <- fmt.Errorf("round %d: stored again (%v, new %v)", i, err, isNew)
				return
			}
		}
		errs <- r.Flush(ctx)
	}()
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
}
