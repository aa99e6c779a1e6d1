package policy

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Duration is a non-negative whole number of seconds, written in JSON as Go
// writes durations without days: "90s" is read, "1m30s" written; "0s" is 0.
type Duration time.Duration

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// String writes d as "1h30m", "45s" or "0s": hours, minutes, seconds, zero
// units left out.
func (d Duration) String() string {
	if d <= 0 {
		return time.Duration(d).String()
	}
	var b strings.Builder
	rest := time.Duration(d)
	for _, u := range []struct {
		size time.Duration
		name string
	}{{time.Hour, "h"}, {time.Minute, "m"}, {time.Second, "s"}} {
		if n := rest / u.size; n > 0 {
			b.WriteString(strconv.FormatInt(int64(n), 10) + u.name)
			rest -= n * u.size
		}
	}
	if rest > 0 {
		b.WriteString(rest.String())
	}
	return b.String()
}

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) {
	if d < 0 || time.Duration(d)%time.Second != 0 {
		return nil, fmt.Errorf("%w: duration %s is not a whole, non-negative number of seconds", ErrInvalid, time.Duration(d))
	}
	return []byte(d.String()), nil
}

// UnmarshalText implements encoding.TextUnmarshaler: Go's duration syntax
// ("30s", "1h30m"), not negative, in whole seconds.
func (d *Duration) UnmarshalText(b []byte) error {
	s := string(b)
	if s == "" || s[0] == '-' || s[0] == '+' {
		return fmt.Errorf("%w: duration %q: want a duration such as 30s, 15m or 6h", ErrInvalid, s)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("%w: duration %q: want a duration such as 30s, 15m or 6h", ErrInvalid, s)
	}
	if v%time.Second != 0 {
		return fmt.Errorf("%w: duration %q is not a whole number of seconds", ErrInvalid, s)
	}
	*d = Duration(v)
	return nil
}

// maxWithinPart is internal/maintenance's bound on each number of a span.
const maxWithinPart = 1_000_000

// validateWithin checks a --keep-within span in internal/maintenance's
// syntax (restic's): number+unit pairs, units y, m, d, h, each at most once.
func validateWithin(s string) error {
	seen := map[byte]bool{}
	rest := s
	for rest != "" {
		i := 0
		for i < len(rest) && rest[i] >= '0' && rest[i] <= '9' {
			i++
		}
		if i == 0 || i == len(rest) {
			return fmt.Errorf("%q: want numbers followed by y, m, d or h (e.g. 1y2m3d4h)", s)
		}
		if n, err := strconv.Atoi(rest[:i]); err != nil || n > maxWithinPart {
			return fmt.Errorf("%q: number out of range", s)
		}
		unit := rest[i]
		if !strings.ContainsRune("ymdh", rune(unit)) {
			return fmt.Errorf("%q: unknown unit %q", s, unit)
		}
		if seen[unit] {
			return fmt.Errorf("%q: unit %c given twice", s, unit)
		}
		seen[unit] = true
		rest = rest[i+1:]
	}
	if s == "" {
		return errors.New("empty")
	}
	return nil
}
