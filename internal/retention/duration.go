package retention

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// ErrBadDuration is returned by ParseDuration.
var ErrBadDuration = errors.New("invalid duration")

// Duration is a calendar span as --keep-within takes it: years, months, days
// and hours ("1y2m3d4h"), applied with time.AddDate so months and leap years
// count as the calendar says.
type Duration struct {
	Years, Months, Days, Hours int
}

// maxDurationPart bounds each number so arithmetic cannot overflow.
const maxDurationPart = 1_000_000

// ParseDuration parses restic's duration syntax: one or more number+unit
// pairs with units y, m, d, h, each unit at most once ("2y", "1m15d", "36h").
func ParseDuration(s string) (Duration, error) {
	var d Duration
	if s == "" {
		return d, fmt.Errorf("%w: empty", ErrBadDuration)
	}
	seen := map[byte]bool{}
	rest := s
	for rest != "" {
		i := 0
		for i < len(rest) && rest[i] >= '0' && rest[i] <= '9' {
			i++
		}
		if i == 0 || i == len(rest) {
			return Duration{}, fmt.Errorf("%w %q: want numbers followed by y, m, d or h (e.g. 1y2m3d4h)", ErrBadDuration, s)
		}
		n, err := strconv.Atoi(rest[:i])
		if err != nil || n > maxDurationPart {
			return Duration{}, fmt.Errorf("%w %q: number out of range", ErrBadDuration, s)
		}
		unit := rest[i]
		if seen[unit] {
			return Duration{}, fmt.Errorf("%w %q: unit %c given twice", ErrBadDuration, s, unit)
		}
		seen[unit] = true
		switch unit {
		case 'y':
			d.Years = n
		case 'm':
			d.Months = n
		case 'd':
			d.Days = n
		case 'h':
			d.Hours = n
		default:
			return Duration{}, fmt.Errorf("%w %q: unknown unit %q", ErrBadDuration, s, unit)
		}
		rest = rest[i+1:]
	}
	return d, nil
}

// Zero reports whether d spans no time.
func (d Duration) Zero() bool { return d == Duration{} }

// Before returns t moved back by d.
func (d Duration) Before(t time.Time) time.Time {
	return t.AddDate(-d.Years, -d.Months, -d.Days).Add(-time.Duration(d.Hours) * time.Hour)
}

func (d Duration) String() string {
	var b strings.Builder
	for _, p := range []struct {
		n int
		u string
	}{{d.Years, "y"}, {d.Months, "m"}, {d.Days, "d"}, {d.Hours, "h"}} {
		if p.n != 0 {
			fmt.Fprintf(&b, "%d%s", p.n, p.u)
		}
	}
	if b.Len() == 0 {
		return "0h"
	}
	return b.String()
}

// Set implements pflag.Value so the CLI can take a Duration flag directly.
func (d *Duration) Set(s string) error {
	x, err := ParseDuration(s)
	if err != nil {
		return err
	}
	*d = x
	return nil
}

// Type implements pflag.Value.
func (d *Duration) Type() string { return "duration" }

// MarshalText writes the duration as ParseDuration reads it.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }
