package schedule

import (
	"testing"
	"time"
)

// FuzzParse: Parse never panics, and what it accepts reads back from
// String to the same schedule, whose next run is after its argument.
func FuzzParse(f *testing.F) {
	for _, s := range propertyExprs {
		f.Add(s)
	}
	for _, s := range []string{"", "@every 1h", "TZ=UTC", "CRON_TZ=x 0 * * * *", "every 5s", "Mon-Fri 08:00-18:00",
		"08:00-08:00 every 1h", "0 0 31 2 *", "*/0 * * * *", "1-2-3 * * * *", "every 999d", "Fri-Mon 22:00-00:00 every 1d"} {
		f.Add(s)
	}
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		f.Fatal(err)
	}
	after := time.Date(2026, 10, 25, 0, 30, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, expr string) {
		s, err := Parse(expr)
		if err != nil {
			return
		}
		again, err := Parse(s.String())
		if err != nil {
			t.Fatalf("Parse(%q) accepted, its String %q refused: %v", expr, s, err)
		}
		if again.String() != s.String() {
			t.Fatalf("Parse(%q) -> %q -> %q", expr, s, again)
		}
		s, again = s.In(berlin), again.In(berlin)
		next := s.Next(after)
		if !next.After(after) || !next.Equal(again.Next(after)) || next.Sub(after) > s.Interval() {
			t.Fatalf("%q: Next = %s, after the round trip %s, Interval %s", expr, next, again.Next(after), s.Interval())
		}
	})
}

// FuzzParseWindow: ParseWindow never panics, and what it accepts reads
// back from String to the same window, which opens within a week.
func FuzzParseWindow(f *testing.F) {
	for _, s := range []string{"", "Sat-Sun", "22:00-06:00", "Mon-Fri 20:00-24:00", "Fri-Mon", "mon,wed 1:00-2:00", "24:00-1:00", "Mon-", ","} {
		f.Add(s)
	}
	at := time.Date(2026, 3, 29, 0, 30, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, expr string) {
		w, err := ParseWindow(expr)
		if err != nil {
			return
		}
		again, err := ParseWindow(w.String())
		if err != nil || again != w {
			t.Fatalf("ParseWindow(%q) -> %q -> %v, %v", expr, w, again, err)
		}
		from, until := w.Open(at)
		if from.Before(at) || from.Sub(at) > 8*day || !w.Contains(from) || !w.IsZero() && !until.After(from) {
			t.Fatalf("%q: Open(%s) = %s, %s", expr, at, from, until)
		}
	})
}
