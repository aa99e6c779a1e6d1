package schedule

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// parseInterval reads the DURATION of "every DURATION": Go's duration
// syntax ("10s", "1h30m") with an optional leading count of days ("7d",
// "1d12h"), in whole seconds, from MinInterval to MaxInterval.
func parseInterval(s string) (time.Duration, error) {
	var d time.Duration
	rest := s
	if n, after, ok := strings.Cut(s, "d"); ok && digits(n) && len(n) <= 3 {
		days, _ := strconv.Atoi(n)
		d, rest = time.Duration(days)*day, after
	}
	if rest != "" {
		if rest[0] == '-' || rest[0] == '+' {
			return 0, fmt.Errorf("%q is not a duration such as 10s, 15m, 6h or 7d", s)
		}
		more, err := time.ParseDuration(rest)
		if err != nil {
			return 0, fmt.Errorf("%q is not a duration such as 10s, 15m, 6h or 7d", s)
		}
		d += more
	}
	switch {
	case d < MinInterval:
		return 0, fmt.Errorf("interval %s is below the minimum %s", s, formatInterval(MinInterval))
	case d > MaxInterval:
		return 0, fmt.Errorf("interval %s is above the maximum %s", s, formatInterval(MaxInterval))
	case d%time.Second != 0:
		return 0, fmt.Errorf("interval %s is not a whole number of seconds", s)
	}
	return d, nil
}

// formatInterval writes d (whole seconds) as parseInterval reads it,
// largest units first and zero units left out: "1d1h", "90s" as "1m30s".
func formatInterval(d time.Duration) string {
	var b strings.Builder
	for _, u := range []struct {
		size time.Duration
		name string
	}{{day, "d"}, {time.Hour, "h"}, {time.Minute, "m"}, {time.Second, "s"}} {
		if n := d / u.size; n > 0 {
			fmt.Fprintf(&b, "%d%s", n, u.name)
			d -= n * u.size
		}
	}
	if b.Len() == 0 {
		return "0s"
	}
	return b.String()
}
