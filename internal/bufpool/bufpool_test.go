package bufpool

import (
	"math/rand"
	"runtime"
	"testing"
)

// TestGetHoldsRequest: every buffer Get returns holds the request, whatever
// sizes went back into the pools before.
func TestGetHoldsRequest(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	for range 5000 {
		n := rng.Intn(3 << 20)
		b := Get(n)
		if len(b) != 0 || cap(b) < n {
			t.Fatalf("Get(%d): len %d cap %d", n, len(b), cap(b))
		}
		b = append(b, make([]byte, n)...)
		// Return buffers of arbitrary capacity, as callers may.
		Put(b[:rng.Intn(len(b)+1)])
		Put(make([]byte, rng.Intn(2<<20)))
	}
}

func TestClass(t *testing.T) {
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
	if b := l.Get(); b != nil {
		t.Fatalf("empty list returned a buffer of cap %d", cap(b))
	}
	a, b, c := make([]byte, 5, 100), make([]byte, 0, 200), make([]byte, 0, 300)
	l.Put(nil)
	l.Put(a)
	l.Put(b)
	l.Put(c) // beyond the bound: dropped
	runtime.GC()
	runtime.GC()
	seen := map[int]bool{}
	for range 2 {
		g := l.Get()
		if g == nil || len(g) != 0 {
			t.Fatalf("got %v (len %d), want an emptied kept buffer", g == nil, len(g))
		}
		seen[cap(g)] = true
	}
	if !seen[100] || !seen[200] {
		t.Fatalf("got capacities %v, want 100 and 200", seen)
	}
	if g := l.Get(); g != nil {
		t.Fatalf("list kept more than its bound: cap %d", cap(g))
	}
}
