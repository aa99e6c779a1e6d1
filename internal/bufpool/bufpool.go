// Package bufpool recycles large byte buffers by power-of-two size class.
//
// Backup and restore move every byte through buffers of about a chunk's size
// (a chunk, its compressed form, a restored blob). Allocating each afresh
// makes the garbage collector hand memory back to the kernel and the next
// allocation fault it in again, which costs more system time than the copy
// itself. A buffer from class c holds any request of up to 2^c bytes, so
// chunks of varying size reuse each other's buffers.
package bufpool

import (
	"math/bits"
	"sync"
)

const (
	minClass = 12 // 4 KiB: smaller requests are not worth pooling
	maxClass = 27 // 128 MiB, the largest blob
)

var pools [maxClass + 1]sync.Pool

// class returns the smallest class whose buffers hold n bytes.
func class(n int) int {
	if n <= 1 {
		return minClass
	}
	return max(bits.Len(uint(n-1)), minClass) // #nosec G115 -- n > 1
}

// Get returns an empty buffer with capacity for at least n bytes.
func Get(n int) []byte {
	c := class(n)
	if c > maxClass {
		return make([]byte, 0, n)
	}
	if bp, ok := pools[c].Get().(*[]byte); ok {
		return (*bp)[:0]
	}
	return make([]byte, 0, 1<<c)
}

// Put hands b's backing array back for reuse; the caller must not touch b
// (or any slice of the same array) afterwards. Buffers of other origins are
// welcome: each goes to the largest class it fully holds.
func Put(b []byte) {
	if cap(b) < 1<<minClass {
		return
	}
	c := min(bits.Len(uint(cap(b)))-1, maxClass) // #nosec G115 -- cap is positive
	b = b[:0]
	pools[c].Put(&b)
}

// List is a bounded free list of buffers of any size. Unlike the size-class
// pools it is not emptied by garbage collections, so a buffer that grew to
// the largest chunk keeps its pages across collections; and it holds at
// most its capacity, which bounds the memory it keeps. Get hands out the
// smallest kept buffer that fits, so a small request does not take the
// buffer a large one needs, and Put keeps the largest buffers when full.
// A List is safe for concurrent use.
type List struct {
	mu   sync.Mutex
	free [][]byte
	max  int
}

// NewList returns a list that keeps up to n buffers.
func NewList(n int) *List { return &List{free: make([][]byte, 0, n), max: n} }

// Get returns an empty buffer with capacity for at least n bytes: the
// smallest kept one that fits, or a new one rounded up to Round(n).
func (l *List) Get(n int) []byte {
	l.mu.Lock()
	best := -1
	for i, b := range l.free {
		if cap(b) >= n && (best < 0 || cap(b) < cap(l.free[best])) {
			best = i
		}
	}
	if best >= 0 {
		b := l.free[best]
		last := len(l.free) - 1
		l.free[best] = l.free[last]
		l.free[last] = nil
		l.free = l.free[:last]
		l.mu.Unlock()
		return b[:0]
	}
	l.mu.Unlock()
	return make([]byte, 0, Round(n))
}

// Put keeps b for a later Get; when the list is full it keeps the larger
// of b and its smallest buffer. The caller must not touch b (or any slice
// of the same array) afterwards.
func (l *List) Put(b []byte) {
	if cap(b) == 0 {
		return
	}
	b = b[:0]
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.free) < l.max {
		l.free = append(l.free, b)
		return
	}
	small := 0
	for i, f := range l.free {
		if cap(f) < cap(l.free[small]) {
			small = i
		}
	}
	if cap(b) > cap(l.free[small]) {
		l.free[small] = b
	}
}

// Round returns n rounded up so that buffers grown to fit requests of
// similar size share a few capacities: to a sixteenth of n's power-of-two
// class (n is more than half the class, so at most 12.5% more than n), and
// to at least 4 KiB.
func Round(n int) int {
	if n <= 1<<minClass {
		return 1 << minClass
	}
	step := 1 << (class(n) - 4)
	return (n + step - 1) / step * step
}
