package control

import (
	"context"
	"sync"
)

// maxBatch bounds the updates stored in one transaction.
const maxBatch = 512

// groupCommit stores the job updates that arrive while a commit is under
// way together, in the next transaction: one sync to disk for all of them
// instead of one each. A fleet whose hosts share a schedule reports within
// the same second; committed one by one (about 10-20 ms each with
// synchronous=FULL on a loaded disk), a thousand running reports would wait
// tens of seconds for their answers. There is no timer and no goroutine:
// the caller that finds no commit under way commits the queue (its own
// update with it); one that finds one waits, and is either committed by it
// or, at the head of the queue when it ends, handed the next commit.
//
// The same serves the agents' connections (AgentsConnected), a thousand of
// which arrive together when a server restarts.
type groupCommit[T any] struct {
	mu      sync.Mutex
	queue   []*pendingUpdate[T]
	leading bool // a caller is committing; the queue waits for it
}

type pendingUpdate[T any] struct {
	up   T
	err  error
	done chan struct{} // closed once err is set
	lead chan struct{} // closed to make this caller commit the queue
}

// update stores u with the others waiting, through store (one
// transaction, an error for each), and returns its error. The commit does
// not end with ctx: other callers' updates ride in it.
func (g *groupCommit[T]) update(ctx context.Context, store func(context.Context, []T) []error, u T) error {
	p := &pendingUpdate[T]{up: u, done: make(chan struct{}), lead: make(chan struct{})}
	g.mu.Lock()
	g.queue = append(g.queue, p)
	if g.leading {
		g.mu.Unlock()
		select {
		case <-p.done:
			return p.err
		case <-p.lead:
		}
	} else {
		g.leading = true
		g.mu.Unlock()
	}
	g.commit(context.WithoutCancel(ctx), store)
	<-p.done
	return p.err
}

// commit stores the head of the queue (at most maxBatch) in one
// transaction, then hands the rest to its first caller.
func (g *groupCommit[T]) commit(ctx context.Context, store func(context.Context, []T) []error) {
	g.mu.Lock()
	batch := g.queue[:min(len(g.queue), maxBatch)]
	g.queue = append([]*pendingUpdate[T](nil), g.queue[len(batch):]...)
	g.mu.Unlock()
	ups := make([]T, len(batch))
	for i, p := range batch {
		ups[i] = p.up
	}
	errs := store(ctx, ups)
	for i, p := range batch {
		p.err = errs[i]
		close(p.done)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.queue) > 0 {
		close(g.queue[0].lead)
	} else {
		g.leading = false
	}
}
