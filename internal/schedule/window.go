package schedule

import (
	"strings"
	"time"
)

// WindowForms lists the window expressions ParseWindow accepts.
const WindowForms = `"DAYS" (e.g. "Sat-Sun"), "HH:MM-HH:MM" (e.g. "22:00-06:00", across midnight), ` +
	`"DAYS HH:MM-HH:MM" (e.g. "Mon-Fri 20:00-24:00"), or nothing for always; ` +
	`DAYS is a day (Mon), a range (Mon-Fri, Fri-Mon) or a list (Mon,Wed,Sat-Sun)`

// A Window is when jobs may start: weekdays and a time of day range on the
// wall clock of its time zone (UTC unless set with In). A range that
// crosses midnight belongs to the day it opens on: "Fri 22:00-06:00" is
// Friday 22:00 to Saturday 06:00. An opening lasts from the first instant
// the clock shows its start to the first instant it shows its end (or the
// daylight-saving jump that skips them), so it can last an hour longer or
// shorter on the nights the clocks change. The zero Window is always open.
type Window struct {
	span span // zero: always open
	loc  *time.Location
}

// ParseWindow reads a window expression, one of WindowForms. A window that
// covers every day and the whole day is the zero Window.
func ParseWindow(expr string) (Window, error) {
	f := strings.Fields(expr)
	if len(f) == 0 {
		return Window{}, nil
	}
	sp, err := parseSpan(f)
	if err != nil {
		return Window{}, syntaxError("window", expr, err, WindowForms)
	}
	if sp.full() {
		return Window{}, nil
	}
	return Window{span: sp}, nil
}

// In returns the window in loc (nil means UTC).
func (w Window) In(loc *time.Location) Window {
	w.loc = loc
	return w
}

func (w Window) location() *time.Location {
	if w.loc == nil {
		return time.UTC
	}
	return w.loc
}

// IsZero reports whether the window is always open.
func (w Window) IsZero() bool { return w.span.days == 0 }

// String returns the canonical expression, "" for the zero Window.
func (w Window) String() string {
	if w.IsZero() {
		return ""
	}
	return w.span.String()
}

// MarshalText returns String, so a Window is a string in JSON.
func (w Window) MarshalText() ([]byte, error) { return []byte(w.String()), nil }

// UnmarshalText parses text, keeping the receiver's time zone.
func (w *Window) UnmarshalText(text []byte) error {
	p, err := ParseWindow(string(text))
	if err != nil {
		return err
	}
	*w = p.In(w.loc)
	return nil
}

// Contains reports whether a job may start at t.
func (w Window) Contains(t time.Time) bool {
	from, _ := w.Open(t)
	return from.Equal(t)
}

// Open returns the earliest instant at or after t inside the window, and
// when that opening closes; until is the zero time for the zero Window.
func (w Window) Open(t time.Time) (from, until time.Time) {
	if w.IsZero() {
		return t, time.Time{}
	}
	loc := w.location()
	base := midnight(wallOf(t, loc))
	// Yesterday's opening may still be open; some day in the next week opens.
	for i := -1; i <= 8; i++ {
		o, e, ok := w.span.on(base.AddDate(0, 0, i))
		if !ok {
			continue
		}
		from, until = instant(o, loc), instant(e, loc)
		if !until.After(t) || !from.Before(until) {
			continue // over, or wholly inside a skipped hour
		}
		if from.Before(t) {
			from = t
		}
		return from, until
	}
	return time.Time{}, time.Time{} // no day: ParseWindow never makes such a window
}

// MaxClosed returns the longest time the window stays shut, counting the
// hour a daylight-saving change adds when clocks go back; 0 for the zero
// Window.
func (w Window) MaxClosed() time.Duration {
	if w.IsZero() {
		return 0
	}
	return w.span.maxClosed() + backwardJump(w.location())
}
