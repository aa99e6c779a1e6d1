// Package bytesize parses the sizes and rates that coffer's flags take
// ("500M", "10GiB", "20MiB/s"), with one grammar everywhere.
package bytesize

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"unicode"

	"github.com/dustin/go-humanize"
)

// ErrSyntax is wrapped by every parse error.
var ErrSyntax = errors.New("invalid size")

// Parse reads a byte count: a number with an optional unit. A bare letter
// or a letter with "iB" is a power of 1024, as in restic ("500M" and
// "500MiB" are both 500×2^20); "kB", "MB", "GB", "TB" are powers of 1000;
// "B" or no unit is bytes. Case does not matter; a space may separate the
// number from its unit. Negative sizes are refused.
func Parse(s string) (int64, error) {
	t := strings.TrimSpace(s)
	if t == "" {
		return 0, fmt.Errorf("%w: empty", ErrSyntax)
	}
	if strings.HasPrefix(t, "-") {
		return 0, fmt.Errorf("%w: %q is negative", ErrSyntax, s)
	}
	unitAt := strings.IndexFunc(t, func(r rune) bool { return unicode.IsLetter(r) })
	if unitAt >= 0 {
		unit := strings.ToLower(strings.TrimSpace(t[unitAt:]))
		if len(unit) == 1 && unit != "b" {
			// restic's single-letter units are binary.
			t = t[:unitAt] + unit + "ib"
		}
	}
	n, err := humanize.ParseBytes(t)
	if err != nil {
		return 0, fmt.Errorf("%w: %q: want a number with an optional unit (K, M, G, T, KiB…, kB…)", ErrSyntax, s)
	}
	if n > math.MaxInt64 {
		return 0, fmt.Errorf("%w: %q is too large", ErrSyntax, s)
	}
	return int64(n), nil
}

// ParseRate reads a rate in bytes per second: a size as for Parse followed
// by "/s" ("20MiB/s", "5M/s"). The "/s" may be left out.
func ParseRate(s string) (int64, error) {
	t := strings.TrimSpace(s)
	t = strings.TrimSuffix(strings.TrimSuffix(t, "/s"), "/S")
	n, err := Parse(t)
	if err != nil {
		return 0, fmt.Errorf("rate: %w", err)
	}
	if n == 0 {
		return 0, fmt.Errorf("%w: rate %q must be above zero", ErrSyntax, s)
	}
	return n, nil
}

// Format prints n bytes in binary units ("1.5 GiB"), the form coffer's
// human output uses.
func Format(n int64) string {
	if n < 0 {
		return "-" + humanize.IBytes(uint64(-n)) // #nosec G115 -- negated negative value
	}
	return humanize.IBytes(uint64(n)) // #nosec G115 -- n is not negative
}
