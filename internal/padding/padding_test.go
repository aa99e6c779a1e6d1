package padding

import (
	"math"
	"math/big"
	"math/bits"
	"math/rand/v2"
	"testing"
)

// Values computed by hand from the paper's definition:
// E = floor(log2 L), S = floor(log2 E)+1, lastBits = E-S,
// bitMask = 2^lastBits - 1, padded = (L + bitMask) & ^bitMask.
func TestKnownValues(t *testing.T) {
	t.Parallel()
	cases := []struct{ in, want int64 }{
		{math.MinInt64, math.MinInt64}, {-5, -5}, {0, 0}, {1, 1},
		{2, 2}, {3, 3}, {4, 4}, {5, 5}, {7, 7},
		{8, 8}, {9, 10}, {10, 10}, {11, 12}, {15, 16}, {16, 16}, {17, 18},
		{100, 104}, {1000, 1024}, {1025, 1088},
		{1<<20 + 1, 1081344}, {16<<20 + 1, 17301504},
		{123456789, 123731968},
		{1<<62 + 1, 4683743612465315840},
		{MaxInput, MaxInput}, // a multiple of 2^56 already
		{MaxInput + 1, math.MaxInt64},
		{math.MaxInt64, math.MaxInt64},
	}
	for _, c := range cases {
		if got := Padme(c.in); got != c.want {
			t.Errorf("Padme(%d) = %d, want %d", c.in, got, c.want)
		}
	}
}

// reference computes Padmé with big integers, straight from the definition.
func reference(n int64) *big.Int {
	l := big.NewInt(n)
	e := l.BitLen() - 1
	s := bits.Len(uint(e))
	mask := new(big.Int).Lsh(big.NewInt(1), uint(e-s))
	mask.Sub(mask, big.NewInt(1))
	p := new(big.Int).Add(l, mask)
	return p.AndNot(p, mask)
}

func samples(t *testing.T) []int64 {
	t.Helper()
	r := rand.New(rand.NewPCG(1, 2))
	var out []int64
	for i := int64(2); i < 5000; i++ {
		out = append(out, i)
	}
	for range 20000 {
		// Spread over all magnitudes: random bit length, random bits.
		out = append(out, r.Int64N(math.MaxInt64-2)>>r.IntN(63)+2)
	}
	for e := 1; e < 63; e++ {
		out = append(out, 1<<e-1, 1<<e, 1<<e+1)
	}
	return out
}

// Properties: matches the definition, never shrinks, overhead under 12%,
// idempotent, and the padded length has at most S significant bits.
func TestProperties(t *testing.T) {
	t.Parallel()
	limit := big.NewInt(math.MaxInt64)
	for _, n := range samples(t) {
		p := Padme(n)
		ref := reference(n)
		if ref.Cmp(limit) <= 0 && ref.Int64() != p {
			t.Fatalf("Padme(%d) = %d, definition gives %v", n, p, ref)
		}
		if p < n {
			t.Fatalf("Padme(%d) = %d < n", n, p)
		}
		// (p-n)/n <= 0.12, in exact arithmetic.
		over := new(big.Int).Mul(big.NewInt(p-n), big.NewInt(100))
		if over.Cmp(new(big.Int).Mul(big.NewInt(n), big.NewInt(12))) > 0 {
			t.Fatalf("Padme(%d) = %d: overhead above 12%%", n, p)
		}
		if Padme(p) != p {
			t.Fatalf("Padme not idempotent at %d: %d -> %d", n, p, Padme(p))
		}
		if p == math.MaxInt64 {
			continue
		}
		e := bits.Len64(uint64(n)) - 1
		s := bits.Len(uint(e))
		if sig := bits.Len64(uint64(p)) - bits.TrailingZeros64(uint64(p)); sig > s+1 {
			t.Fatalf("Padme(%d) = %b has %d significant bits, want <= %d", n, p, sig, s+1)
		}
	}
}

func TestMonotonic(t *testing.T) {
	t.Parallel()
	prev := Padme(math.MinInt64)
	for n := int64(-10); n < 1<<17; n++ {
		p := Padme(n)
		if p < prev {
			t.Fatalf("Padme(%d) = %d < Padme(%d) = %d", n, p, n-1, prev)
		}
		prev = p
	}
	s := samples(t)
	for _, a := range s {
		for _, b := range s[len(s)-50:] {
			if a <= b && Padme(a) > Padme(b) {
				t.Fatalf("not monotonic: Padme(%d)=%d > Padme(%d)=%d", a, Padme(a), b, Padme(b))
			}
		}
	}
}

// Leakage: all lengths with the same E = floor(log2 n) collapse onto at most
// 2^S + 1 padded values (the +1 is the next power of two).
func TestLeakageBound(t *testing.T) {
	t.Parallel()
	for e := 1; e <= 16; e++ {
		s := bits.Len(uint(e))
		seen := map[int64]bool{}
		for n := int64(1) << e; n < int64(1)<<(e+1); n++ {
			seen[Padme(n)] = true
		}
		if len(seen) > 1<<s+1 {
			t.Errorf("E=%d: %d distinct padded lengths, want <= %d", e, len(seen), 1<<s+1)
		}
	}
}

func FuzzPadme(f *testing.F) {
	f.Add(int64(0))
	f.Add(int64(1025))
	f.Add(int64(math.MaxInt64))
	f.Fuzz(func(t *testing.T, n int64) {
		p := Padme(n)
		if p < n {
			t.Fatalf("Padme(%d) = %d < n", n, p)
		}
		if n > 1 && n <= MaxInput && reference(n).Int64() != p {
			t.Fatalf("Padme(%d) = %d, definition gives %v", n, p, reference(n))
		}
	})
}
