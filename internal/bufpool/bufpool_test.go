package bufpool

import (
	"math/rand"
	"runtime"
	"testing"
)

// TestGetHoldsRequest: every buffer Get returns holds the request, whatever
// sizes went back into the pools before.
func TestGetHoldsRequest(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewSource(1))
	// Sizes spread evenly over the classes (4 KiB to 4 MiB) rather than
	// over bytes, so each class is hit from both sides a few dozen times
	// without gigabytes of allocation, which -race makes slow.
	size := func(maxShift int) int { return rng.Intn(2 << rng.Intn(maxShift)) }
	for range 1000 {
		n := size(22)
		b := Get(n)
		if len(b) != 0 || cap(b) < n {
			t.Fatalf("Get(%d): len %d cap %d", n, len(b), cap(b))
		}
		b = b[:n]
		// Return buffers of arbitrary length and capacity, as callers may.
		Put(b[:rng.Intn(len(b)+1)])
		Put(make([]byte, size(21)))
	}
}

func TestClass(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ n, want int }{{0, 12}, {1, 12}, {4096, 12}, {4097, 13}, {1 << 20, 20}, {1<<20 + 1, 21}} {
		if got := class(c.n); got != c.want {
			t.Errorf("class(%d) = %d, want %d", c.n, got, c.want)
		}
	}
	if b := Get(200 << 20); cap(b) < 200<<20 {
		t.Fatalf("oversized request: cap %d", cap(b))
	}
}

// TestList: a list hands back the buffers put into it, emptied, keeps no
// more than its bound, survives garbage collections and ignores nil.
func TestList(t *testing.T) {
	l := NewList(2)
	if b := l.Get(100); len(b) != 0 || cap(b) < 100 {
		t.Fatalf("empty list: len %d cap %d, want a new buffer for 100 bytes", len(b), cap(b))
	}
	a, b, c := make([]byte, 5, 100<<10), make([]byte, 0, 200<<10), make([]byte, 0, 300<<10)
	l.Put(nil)
	l.Put(a)
	l.Put(b)
	l.Put(c)                       // full: replaces the smallest (a)
	l.Put(make([]byte, 0, 50<<10)) // full and smaller than all kept: dropped
	runtime.GC()
	runtime.GC()
	// The smallest fitting buffer is handed out, emptied.
	if g := l.Get(150 << 10); len(g) != 0 || cap(g) != 200<<10 {
		t.Fatalf("Get(150 KiB): len %d cap %d, want the kept 200 KiB buffer", len(g), cap(g))
	}
	// Nothing kept fits: a new buffer, rounded up.
	if g := l.Get(400 << 10); cap(g) != Round(400<<10) {
		t.Fatalf("Get(400 KiB): cap %d, want a new one of %d", cap(g), Round(400<<10))
	}
	if g := l.Get(1); cap(g) != 300<<10 {
		t.Fatalf("Get(1): cap %d, want the kept 300 KiB buffer", cap(g))
	}
	if g := l.Get(1); cap(g) != Round(1) {
		t.Fatalf("list kept more than its bound: cap %d", cap(g))
	}
}

func TestRound(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewSource(2))
	for range 10000 {
		n := rng.Intn(16 << 20)
		r := Round(n)
		if r < n || r < 1<<minClass || (n > 1<<minClass && r > n+n/8+1) {
			t.Fatalf("Round(%d) = %d", n, r)
		}
		if Round(r) != r {
			t.Fatalf("Round(Round(%d)) = %d, want %d", n, Round(r), r)
		}
	}
}
