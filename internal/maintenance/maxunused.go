package maintenance

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/coffer-backup/coffer/internal/bytesize"
)

// MaxUnused is how much unused data prune tolerates in packs that still hold
// used blobs before it repacks them: a percentage of the repository size
// after pruning, an absolute byte count, or unlimited.
type MaxUnused struct {
	Percent   float64
	Bytes     int64
	Unlimited bool
	isBytes   bool
}

// DefaultMaxUnused tolerates 10% unused data.
var DefaultMaxUnused = MaxUnused{Percent: 10}

// ParseMaxUnused reads "10%", "unlimited", or a size in the grammar of
// internal/bytesize ("0", "500M", "10GiB", "2GB"), as quotas take it.
func ParseMaxUnused(s string) (MaxUnused, error) {
	s = strings.TrimSpace(s)
	bad := func() (MaxUnused, error) {
		return MaxUnused{}, fmt.Errorf("invalid --max-unused %q: want a percentage (10%%), a size (500M, 10GiB) or \"unlimited\"", s)
	}
	switch {
	case s == "unlimited":
		return MaxUnused{Unlimited: true}, nil
	case strings.HasSuffix(s, "%"):
		p, err := strconv.ParseFloat(strings.TrimSuffix(s, "%"), 64)
		if err != nil || p < 0 || p > 100 || math.IsNaN(p) {
			return bad()
		}
		if p == 100 {
			return MaxUnused{Unlimited: true}, nil
		}
		return MaxUnused{Percent: p}, nil
	}
	n, err := bytesize.Parse(s)
	if err != nil {
		return bad()
	}
	return MaxUnused{Bytes: n, isBytes: true}, nil
}

// Limit is the unused byte count tolerated beside used bytes of live data.
func (m MaxUnused) Limit(used int64) int64 {
	switch {
	case m.Unlimited:
		return math.MaxInt64
	case m.isBytes:
		return m.Bytes
	}
	l := m.Percent / (100 - m.Percent) * float64(used)
	if l >= math.MaxInt64 {
		return math.MaxInt64
	}
	return int64(l)
}

func (m MaxUnused) String() string {
	switch {
	case m.Unlimited:
		return "unlimited"
	case m.isBytes:
		return strconv.FormatInt(m.Bytes, 10)
	}
	return strconv.FormatFloat(m.Percent, 'f', -1, 64) + "%"
}
