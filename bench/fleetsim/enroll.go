package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coffer-backup/coffer/internal/pki"
	"github.com/coffer-backup/coffer/internal/pki/enroll"
	"github.com/coffer-backup/coffer/internal/server/admin"
)

// enrollAll mints n tokens and redeems them, workers at a time.
func enrollAll(ctx context.Context, dir, addr, out string, n, workers int) error {
	if err := os.MkdirAll(out, 0o700); err != nil {
		return err
	}
	t0 := time.Now()
	tokens, err := mintTokens(ctx, dir, n)
	if err != nil {
		return err
	}
	minted := time.Since(t0)
	t1 := time.Now()
	var waits atomic.Int64
	errs := make([]error, n)
	next := make(chan int)
	var wg sync.WaitGroup
	for range max(workers, 1) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				errs[i] = enrollOne(ctx, addr, out, i, tokens[i], &waits)
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	took := time.Since(t1)
	fmt.Fprintf(os.Stderr, "fleetsim: minted %d tokens in %s (%.1f ms each); enrolled %d hosts in %s (%.1f/s, %d waits on the server's rate limit)\n",
		n, minted.Round(time.Millisecond), float64(minted.Microseconds())/1000/float64(n),
		n, took.Round(time.Millisecond), float64(n)/took.Seconds(), waits.Load())
	for i := range n {
		fmt.Println(clientName(i))
	}
	return nil
}

// mintTokens issues one token per host with admin.IssueToken, the code of
// `coffer server token`, in one process instead of n.
func mintTokens(ctx context.Context, dir string, n int) ([]*pki.Token, error) {
	adm, err := admin.Open(ctx, dir)
	if err != nil {
		return nil, err
	}
	defer adm.Close()
	tokens := make([]*pki.Token, n)
	for i := range n {
		issued, err := adm.IssueToken(ctx, clientName(i), admin.TokenOptions{TTL: time.Hour})
		if err != nil {
			return nil, err
		}
		if tokens[i], err = pki.ParseToken(issued.Token); err != nil {
			return nil, err
		}
	}
	return tokens, nil
}

// enrollOne redeems host i's token from its own source address and
// saves the identity as `coffer enroll` does. The server's global limit
// (10 a second after a burst) answers 429 beyond its rate: the client
// waits its Retry-After, so attempts are generous.
func enrollOne(ctx context.Context, addr, out string, i int, tok *pki.Token, waits *atomic.Int64) error {
	opts := enroll.Options{LocalAddr: sourceAddr(i), Attempts: 100, MaxWait: 5 * time.Second,
		Waiting: func(int, time.Duration) { waits.Add(1) }}
	id, err := enroll.Enroll(ctx, addr, tok, opts)
	if err != nil {
		return fmt.Errorf("enroll %s: %w", clientName(i), err)
	}
	return enroll.SaveIdentity(filepath.Join(out, clientName(i)), addr, id)
}
