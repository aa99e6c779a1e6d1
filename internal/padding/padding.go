// Package padding rounds lengths up with Padmé (Nikitin et al., PETS 2019), so
// a padded length reveals only O(log log n) bits about the true length n.
package padding

import (
	"math"
	"math/bits"
)

// MaxInput is the largest n whose Padmé length fits in an int64; Padme
// returns math.MaxInt64 above it.
const MaxInput = math.MaxInt64 - (1<<56 - 1)

// Padme returns the Padmé length of n: the smallest length >= n whose
// binary form has, below its top bit, only S = floor(log2(E))+1 significant
// bits, where E = floor(log2(n)). The overhead is below 12% (at most 2^-S)
// and lengths with the same E map to at most 2^S values. n <= 1 is returned
// unchanged; n > MaxInput yields math.MaxInt64.
func Padme(n int64) int64 {
	if n <= 1 {
		return n
	}
	if n > MaxInput {
		return math.MaxInt64
	}
	e := bits.Len64(uint64(n)) - 1 // floor(log2 n)
	s := bits.Len(uint(e))         // floor(log2 e) + 1; e >= 1 here
	mask := int64(1)<<(e-s) - 1
	return (n + mask) &^ mask
}
