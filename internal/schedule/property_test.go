package schedule

import (
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// propertyExprs covers every form, windows across midnight and schedules
// whose runs fall in the hours daylight-saving time skips or repeats.
var propertyExprs = []string{
	"30 2 * * *", "0 * * * *", "*/20 2 * * *", "15 1-3 * * 0", "0 9-17 * * 1-5",
	"0 12 13 * 5", "0 0 1 * *", "0 0 29 2 *", "59 23 31 12 *",
	"@hourly", "@daily", "@weekly", "@monthly",
	"every 10s", "every 7m", "every 6h", "every 1d", "every 3d5h",
	"daily 02:30", "daily 00:00", "daily 23:59",
	"Mon-Fri 08:00-18:00 every 1h", "Fri 22:00-06:00 every 3h", "Sat-Sun every 12h",
	"01:00-04:00 every 30m", "Mon,Wed,Fri 02:10-02:50 every 10s", "Sun 00:30-03:30 every 7m",
}

var propertyZones = []string{"UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata", "America/Sao_Paulo"}

// randomInstant returns an instant between 1990 and 2060, often close to
// a daylight-saving change in Europe or America.
func randomInstant(r *rand.Rand) time.Time {
	if r.IntN(2) == 0 {
		y := 1990 + r.IntN(70)
		base := []time.Time{
			time.Date(y, 3, 8, 0, 0, 0, 0, time.UTC), time.Date(y, 3, 25, 0, 0, 0, 0, time.UTC),
			time.Date(y, 10, 25, 0, 0, 0, 0, time.UTC), time.Date(y, 11, 1, 0, 0, 0, 0, time.UTC),
		}[r.IntN(4)]
		return base.Add(time.Duration(r.Int64N(int64(8 * day))))
	}
	lo := time.Date(1990, 1, 1, 0, 0, 0, 0, time.UTC).Unix()
	return time.Unix(lo+r.Int64N(70*365*86400), r.Int64N(1e9)).UTC()
}

// TestNextProperties checks, for every form and zone at random instants:
// Next is strictly after its argument, no further than Interval, monotone,
// and a run of the schedule: on a wall time it matches (or at the
// daylight-saving jump that skipped it), inside its window.
func TestNextProperties(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(1, 2))
	for _, zone := range propertyZones {
		loc := mustLoad(t, zone)
		for _, expr := range propertyExprs {
			s := MustParse(expr).In(loc)
			for range 300 {
				a := randomInstant(r)
				b := a.Add(time.Duration(r.Int64N(int64(3 * day))))
				na, nb := s.Next(a), s.Next(b)
				switch {
				case !na.After(a):
					t.Fatalf("%q in %s: Next(%s) = %s, not after", expr, zone, a, na)
				case na.Sub(a) > s.Interval():
					t.Fatalf("%q in %s: Next(%s) = %s, further than Interval %s", expr, zone, a, na, s.Interval())
				case nb.Before(na):
					t.Fatalf("%q in %s: Next(%s) = %s before Next(%s) = %s", expr, zone, b, nb, a, na)
				case !b.Before(na) && !nb.After(na) || b.Before(na) && !nb.Equal(na):
					t.Fatalf("%q in %s: Next(%s) = %s, but Next(%s) = %s", expr, zone, a, na, b, nb)
				}
				checkIsRun(t, s, na)
			}
		}
	}
}

// checkIsRun fails unless at is a run of s by its own definition.
func checkIsRun(t *testing.T, s Schedule, at time.Time) {
	t.Helper()
	loc := s.Location()
	w := wallOf(at, loc)
	switch s.kind {
	case kindEvery:
		if at.Unix()%int64(s.step/time.Second) != 0 || at.Nanosecond() != 0 {
			t.Fatalf("%q: %s is no multiple of the interval", s, at)
		}
		return
	case kindWindow:
		if !(Window{span: s.span, loc: loc}).Contains(at) {
			t.Fatalf("%q in %s: run at %s is outside its window", s, loc, at)
		}
	}
	if start, _ := at.ZoneBounds(); at.Equal(start) {
		return // the jump that skipped the wall time
	}
	if !s.nextWall(w.Add(-time.Nanosecond)).Equal(w) {
		t.Fatalf("%q in %s: run at %s (wall %s) does not match", s, loc, at, w)
	}
}

// TestRoundTripProperty parses random combinations of the grammar's parts
// and checks that String reads back to the same schedule.
func TestRoundTripProperty(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(3, 4))
	days := []string{"mon", "Tue", "WED", "Thu", "Fri", "sat", "Sun"}
	pick := func(xs ...string) string { return xs[r.IntN(len(xs))] }
	clock := func() string {
		return pick("0", "") + string(rune('0'+r.IntN(10))) + ":" + pick("00", "15", "30", "59")
	}
	interval := func() string {
		return pick("10s", "90s", "1m", "45m", "1h", "1h30m", "6h", "25h", "1d", "2d3h", "7d")
	}
	dayList := func() string {
		var parts []string
		for range 1 + r.IntN(3) {
			d := days[r.IntN(7)]
			if r.IntN(2) == 0 {
				d += "-" + days[r.IntN(7)]
			}
			parts = append(parts, d)
		}
		return strings.Join(parts, ",")
	}
	berlin := mustLoad(t, "Europe/Berlin")
	for range 3000 {
		var expr string
		switch r.IntN(4) {
		case 0:
			expr = "every " + interval()
		case 1:
			expr = "daily " + clock()
		case 2:
			expr = strings.Join([]string{pick("*", "0", "*/5", "1-10/3", "59"), pick("*", "2", "0-23/6", "9-17"),
				pick("*", "1", "13", "29", "1-7"), pick("*", "2", "jan-mar", "12"), pick("*", "0", "mon-fri", "6", "sat,sun")}, " ")
		default:
			expr = pick(dayList()+" ", "") + pick(clock()+"-"+clock()+" ", "") + "every " + interval()
		}
		s, err := Parse(expr)
		if err != nil {
			if strings.Contains(err.Error(), "is empty") || strings.Contains(err.Error(), "needs an interval") {
				continue
			}
			t.Fatalf("Parse(%q): %v", expr, err)
		}
		again, err := Parse(s.String())
		if err != nil || again.String() != s.String() {
			t.Fatalf("Parse(%q) -> %q -> %q, %v", expr, s, again, err)
		}
		s, again = s.In(berlin), again.In(berlin)
		if s.Interval() != again.Interval() {
			t.Fatalf("%q: Interval %s after the round trip, %s before", expr, again.Interval(), s.Interval())
		}
		for range 5 {
			a := randomInstant(r)
			if !s.Next(a).Equal(again.Next(a)) {
				t.Fatalf("%q: Next(%s) = %s, but %s after the round trip", expr, a, s.Next(a), again.Next(a))
			}
		}
	}
}

// TestNextRunProperties checks NextRun at random: after the last run,
// never before now, inside the window, and on the host's jittered slot
// when the window does not move it.
func TestNextRunProperties(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(5, 6))
	berlin := mustLoad(t, "Europe/Berlin")
	windows := []string{"", "22:00-06:00", "Sat-Sun", "Mon-Fri 20:00-24:00", "02:00-03:00"}
	for _, expr := range propertyExprs {
		s := MustParse(expr).In(berlin)
		for range 100 {
			tm := Timing{Jitter: time.Duration(r.IntN(3)) * time.Hour, Window: mustWindow(t, windows[r.IntN(len(windows))])}.In(berlin)
			host := string(rune('a' + r.IntN(26)))
			now := randomInstant(r)
			last := now.Add(-time.Duration(1 + r.Int64N(int64(2*day))))
			got := tm.NextRun(s, host, last, now)
			switch {
			case !got.After(last) || got.Before(now):
				t.Fatalf("%q %+v: NextRun(last %s, now %s) = %s", expr, tm, last, now, got)
			case !tm.InWindow(got):
				t.Fatalf("%q window %q: NextRun = %s, outside", expr, tm.Window, got)
			}
			if slot := s.Next(last.Add(-tm.Offset(host))).Add(tm.Offset(host)); slot.After(now) && tm.InWindow(slot) && !got.Equal(slot) {
				t.Fatalf("%q: NextRun = %s, want the jittered slot %s", expr, got, slot)
			}
		}
	}
}
