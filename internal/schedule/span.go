package schedule

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// A span is a set of weekdays and a time of day range: "Mon-Fri
// 08:00-18:00". The range belongs to the day it opens on, so "Fri
// 22:00-06:00" is open from Friday 22:00 to Saturday 06:00.
type span struct {
	days   uint8 // bit d: opens on time.Weekday(d)
	start  int   // minutes after midnight, 0..1439
	length int   // minutes open, 1..1440
}

const (
	allDays    = 1<<7 - 1
	minutesDay = 24 * 60
	day        = 24 * time.Hour
)

var dayNames = [7]string{"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"}

// full reports whether the span is always open.
func (s span) full() bool { return s.days == allDays && s.length == minutesDay }

// parseSpan reads one or two fields: days, a time range, or days then a
// time range. Days default to every day and the range to the whole day.
func parseSpan(fields []string) (span, error) {
	s := span{days: allDays, length: minutesDay}
	if len(fields) == 0 || len(fields) > 2 {
		return s, errors.New(`a window is "DAYS", "HH:MM-HH:MM" or "DAYS HH:MM-HH:MM"`)
	}
	rest := fields
	if f := fields[0]; f != "" && !isDigit(f[0]) {
		days, err := parseDays(f)
		if err != nil {
			return s, err
		}
		s.days, rest = days, fields[1:]
	}
	if len(rest) == 0 {
		return s, nil
	}
	if len(rest) > 1 || rest[0] == "" || !isDigit(rest[0][0]) {
		return s, fmt.Errorf("%q is not a time range such as 08:00-18:00 (days come first)", strings.Join(rest, " "))
	}
	start, length, err := parseRange(rest[0])
	if err != nil {
		return s, err
	}
	s.start, s.length = start, length
	return s, nil
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// parseDays reads "Mon", "Mon-Fri", "Mon,Wed,Fri", "Sat-Sun", "Fri-Mon"
// (ranges may wrap past Sunday), names in any case.
func parseDays(f string) (uint8, error) {
	var days uint8
	for item := range strings.SplitSeq(f, ",") {
		from, to, isRange := strings.Cut(item, "-")
		a, err := parseDay(from)
		if err != nil {
			return 0, err
		}
		b := a
		if isRange {
			if b, err = parseDay(to); err != nil {
				return 0, err
			}
		}
		for d := a; ; d = (d + 1) % 7 {
			days |= 1 << d
			if d == b {
				break
			}
		}
	}
	return days, nil
}

func parseDay(s string) (int, error) {
	for i, n := range dayNames {
		if strings.EqualFold(s, n) {
			return i, nil
		}
	}
	return 0, fmt.Errorf("%q is not a day: days are Mon Tue Wed Thu Fri Sat Sun, in ranges (Mon-Fri) or lists (Mon,Wed,Fri)", s)
}

// parseRange reads "HH:MM-HH:MM". An end before the start crosses
// midnight; 24:00 is allowed as an end.
func parseRange(f string) (start, length int, err error) {
	a, b, ok := strings.Cut(f, "-")
	if !ok {
		return 0, 0, fmt.Errorf("%q is not a time range such as 08:00-18:00", f)
	}
	if start, err = parseClock(a, false); err != nil {
		return 0, 0, err
	}
	end, err := parseClock(b, true)
	if err != nil {
		return 0, 0, err
	}
	switch {
	case end == start:
		return 0, 0, fmt.Errorf("time range %q is empty", f)
	case end < start:
		end += minutesDay
	}
	return start, end - start, nil
}

// parseClock reads "HH:MM" (or "H:MM") as minutes after midnight; 24:00
// only when allow24.
func parseClock(s string, allow24 bool) (int, error) {
	hs, ms, ok := strings.Cut(s, ":")
	bad := fmt.Errorf("%q is not a time of day HH:MM (00:00 to 23:59)", s)
	if !ok || len(hs) < 1 || len(hs) > 2 || len(ms) != 2 || !digits(hs) || !digits(ms) {
		return 0, bad
	}
	h, _ := strconv.Atoi(hs)
	m, _ := strconv.Atoi(ms)
	switch {
	case allow24 && h == 24 && m == 0:
		return minutesDay, nil
	case h > 23 || m > 59:
		return 0, bad
	}
	return h*60 + m, nil
}

func digits(s string) bool {
	for i := range len(s) {
		if !isDigit(s[i]) {
			return false
		}
	}
	return s != ""
}

func formatClock(m int) string { return fmt.Sprintf("%02d:%02d", m/60, m%60) }

// String is the canonical form parseSpan reads back: days Monday first,
// runs of two or more as ranges; every day is left out when a time range
// follows, the whole day is left out after days.
func (s span) String() string {
	var days []string
	for i := 0; i < 7; {
		if s.days&(1<<((i+1)%7)) == 0 {
			i++
			continue
		}
		j := i
		for j+1 < 7 && s.days&(1<<((j+2)%7)) != 0 {
			j++
		}
		d := dayNames[(i+1)%7]
		if j > i {
			d += "-" + dayNames[(j+1)%7]
		}
		days = append(days, d)
		i = j + 1
	}
	dayText := strings.Join(days, ",")
	if s.start == 0 && s.length == minutesDay {
		return dayText
	}
	end := s.start + s.length
	if end > minutesDay {
		end -= minutesDay
	}
	r := formatClock(s.start) + "-" + formatClock(end)
	if s.days == allDays {
		return r
	}
	return dayText + " " + r
}

// opensOn reports whether the span opens on the weekday of wall time w.
func (s span) opensOn(w time.Time) bool { return s.days&(1<<w.Weekday()) != 0 }

// midnight returns the wall midnight of w's day.
func midnight(w time.Time) time.Time {
	y, m, d := w.Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}

// on returns the opening and closing wall times of the span's opening on
// the day of wall midnight d, if it opens that day.
func (s span) on(d time.Time) (opens, closes time.Time, ok bool) {
	if !s.opensOn(d) {
		return time.Time{}, time.Time{}, false
	}
	opens = d.Add(time.Duration(s.start) * time.Minute)
	return opens, opens.Add(time.Duration(s.length) * time.Minute), true
}

// fires returns the first wall time after w of "span every step": the
// opening time and every step after it while the span is open.
func (s span) fires(w time.Time, step time.Duration) time.Time {
	base := midnight(w)
	for i := -1; i <= 8; i++ {
		o, e, ok := s.on(base.AddDate(0, 0, i))
		if !ok {
			continue
		}
		f := o
		if !w.Before(o) {
			f = o.Add((w.Sub(o)/step + 1) * step)
		}
		if f.Before(e) {
			return f
		}
	}
	return time.Time{}
}

// maxDayGap returns the most days from one opening day to the next.
func (s span) maxDayGap() int {
	gap := 0
	for d := range 7 {
		if s.days&(1<<d) == 0 {
			continue
		}
		n := 1
		for s.days&(1<<((d+n)%7)) == 0 {
			n++
		}
		gap = max(gap, n)
	}
	return gap
}

// maxClosed returns the longest time the span stays closed on the wall.
func (s span) maxClosed() time.Duration {
	return time.Duration(s.maxDayGap())*day - time.Duration(s.length)*time.Minute
}

// firesGap returns the longest wall time between two fires of "span every
// step".
func (s span) firesGap(step time.Duration) time.Duration {
	open := time.Duration(s.length) * time.Minute
	n := (open + step - 1) / step // fires per opening
	gap := time.Duration(s.maxDayGap())*day - (n-1)*step
	if n > 1 {
		gap = max(gap, step)
	}
	return gap
}
