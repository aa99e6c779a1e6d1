package schedule

import (
	"sync"
	"time"
)

// Calendar schedules are evaluated on the wall clock, then mapped to
// instants. A wall time is carried as a time.Time in UTC whose fields are the
// local clock's, so arithmetic on it never meets a daylight-saving jump; the
// jumps are dealt with once, in instant.

// wallOf returns the wall clock that t shows in loc, as a UTC time.
func wallOf(t time.Time, loc *time.Location) time.Time {
	t = t.In(loc)
	y, mo, d := t.Date()
	h, mi, s := t.Clock()
	return time.Date(y, mo, d, h, mi, s, t.Nanosecond(), time.UTC)
}

// instant returns the first instant at which loc's clock shows the wall
// time w. When the clock shows w twice (the hour repeated when clocks go
// back) that is the first of the two; when it never shows w (the hour
// skipped when clocks go forward) it is the instant the clock jumps, the
// first one after w on the wall.
func instant(w time.Time, loc *time.Location) time.Time {
	y, mo, d := w.Date()
	h, mi, s := w.Clock()
	t := time.Date(y, mo, d, h, mi, s, w.Nanosecond(), loc)
	start, end := t.ZoneBounds()
	var best time.Time
	consider := func(c time.Time) {
		if wallOf(c, loc).Equal(w) && (best.IsZero() || c.Before(best)) {
			best = c
		}
	}
	consider(t)
	// The same wall time under the offsets of the neighbouring zones.
	if !start.IsZero() {
		_, off := start.Add(-time.Nanosecond).Zone()
		consider(w.Add(-time.Duration(off) * time.Second))
	}
	if !end.IsZero() {
		_, off := end.Zone()
		consider(w.Add(-time.Duration(off) * time.Second))
	}
	if !best.IsZero() {
		return best.In(loc)
	}
	// w lies in a gap: time.Date resolved it into the zone before or after
	// the jump, whose bound is the jump.
	if wallOf(t, loc).After(w) {
		return start.In(loc)
	}
	return end.In(loc)
}

// backwardJump returns the largest step by which loc's clock is ever set
// back between 1970 and 2100: the hour repeated in autumn in most zones
// that keep daylight-saving time, zero in UTC. A calendar schedule's
// longest gap between runs grows by that much on such a night.
func backwardJump(loc *time.Location) time.Duration {
	jumps.Lock()
	defer jumps.Unlock()
	if j, ok := jumps.m[loc]; ok {
		return j
	}
	j := scanBackwardJump(loc)
	if len(jumps.m) < 256 { // a cache, not a leak, for callers that load zones anew
		jumps.m[loc] = j
	}
	return j
}

// jumps caches backwardJump: the scan walks some 250 zone changes.
var jumps = struct {
	sync.Mutex
	m map[*time.Location]time.Duration
}{m: map[*time.Location]time.Duration{}}

func scanBackwardJump(loc *time.Location) time.Duration {
	var jump time.Duration
	t := time.Date(1970, 1, 1, 0, 0, 0, 0, loc)
	limit := time.Date(2100, 1, 1, 0, 0, 0, 0, loc)
	for t.Before(limit) {
		_, end := t.ZoneBounds()
		if end.IsZero() {
			break
		}
		if !end.After(t) {
			// Past its table, Go extends a zone by rule and can report a
			// bound at t itself at the end of a year: step over it.
			t = t.Add(day)
			continue
		}
		_, before := t.Zone()
		_, after := end.Zone()
		if d := time.Duration(before-after) * time.Second; d > jump {
			jump = d
		}
		t = end
	}
	return jump
}
