package schedule

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
	_ "time/tzdata" // the DST tests must not depend on the machine's zoneinfo
)

func mustLoad(t testing.TB, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

func utc(y int, mo time.Month, d, h, mi int) time.Time {
	return time.Date(y, mo, d, h, mi, 0, 0, time.UTC)
}

func TestParseCanonical(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"30 2 * * *":                           "30 2 * * *",
		"  30   2 *\t*   * ":                   "30 2 * * *",
		"0 9-17 * * mon-fri":                   "0 9-17 * * mon-fri",
		"@DAILY":                               "@daily",
		"@hourly":                              "@hourly",
		"@weekly":                              "@weekly",
		"@monthly":                             "@monthly",
		"every 10s":                            "every 10s",
		"EVERY 90s":                            "every 1m30s",
		"every 36h":                            "every 1d12h",
		"every 1d12h":                          "every 1d12h",
		"every 7d":                             "every 7d",
		"every 6h":                             "every 6h",
		"daily 2:30":                           "daily 02:30",
		"Daily 23:59":                          "daily 23:59",
		"mon-fri 08:00-18:00 every 1h":         "Mon-Fri 08:00-18:00 every 1h",
		"mon-fri 8:00-18:00 every 60m":         "Mon-Fri 08:00-18:00 every 1h",
		"Sat-Sun every 6h":                     "Sat-Sun every 6h",
		"Mon-Sun 00:00-24:00 every 1h":         "Mon-Sun every 1h",
		"00:00-24:00 every 1h":                 "Mon-Sun every 1h",
		"08:00-18:00 every 30m":                "08:00-18:00 every 30m",
		"Mon-Sun 22:00-06:00 every 2h":         "22:00-06:00 every 2h",
		"Fri-Mon 22:00-00:00 every 1h":         "Mon,Fri-Sun 22:00-24:00 every 1h",
		"Mon,Wed,Fri 12:00-13:00 every 15m":    "Mon,Wed,Fri 12:00-13:00 every 15m",
		"Sun,Sat,Mon,Tue 1:05-1:06 every 10s":  "Mon-Tue,Sat-Sun 01:05-01:06 every 10s",
		"0 0 29 2 *":                           "0 0 29 2 *",
		"*/15 * * * *":                         "*/15 * * * *",
		"Mon-Fri   08:00-18:00   every   1h  ": "Mon-Fri 08:00-18:00 every 1h",
	} {
		s, err := Parse(in)
		if err != nil {
			t.Errorf("Parse(%q): %v", in, err)
			continue
		}
		if s.String() != want {
			t.Errorf("Parse(%q).String() = %q, want %q", in, s.String(), want)
		}
		again, err := Parse(s.String())
		if err != nil || again.String() != want {
			t.Errorf("Parse(%q) = %q, %v: does not round-trip", want, again.String(), err)
		}
	}
}

func TestParseErrors(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"":                              "empty expression",
		"   ":                           "empty expression",
		"every 5s":                      "below the minimum 10s",
		"every 0s":                      "below the minimum",
		"every -1h":                     "not a duration",
		"every 400d":                    "above the maximum",
		"every 10.5s":                   "not a whole number of seconds",
		"every banana":                  "not a duration",
		"every 1d-5h":                   "not a duration",
		"every":                         `"every" takes one duration`,
		"every 1h 2h":                   `"every" takes one duration`,
		"@every 1h":                     `write "every DURATION"`,
		"@yearly":                       "unknown descriptor",
		"@daily 3":                      "takes nothing after it",
		"daily 25:00":                   "not a time of day",
		"daily 24:00":                   "not a time of day",
		"daily 2:3":                     "not a time of day",
		"daily":                         `"daily" takes one time of day`,
		"Mon-Fri 08:00-18:00":           "needs an interval",
		"Mon-Fry 08:00-18:00 every 1h":  `"Fry" is not a day`,
		"Mon,,Fri every 1h":             `"" is not a day`,
		"08:00-08:00 every 1h":          "is empty",
		"08:00-18:00 Mon every 1h":      "days come first",
		"Mon 08:00 every 1h":            "not a time range",
		"Mon Tue Wed every 1h":          "a window is",
		" every 1h every 2h":            `"every" takes one duration`,
		"Mon every 5s":                  "below the minimum",
		"60 * * * *":                    "above maximum",
		"* * * * 7":                     "above maximum",
		"0 0 31 2 *":                    "match no date",
		"0 0 30 2 *":                    "match no date",
		"TZ=UTC 0 * * *":                "time zone",
		"TZ=UTC":                        "not a known form",
		"CRON_TZ=Europe/Berlin 0 * * *": "time zone",
		"1 2 3":                         "not a known form",
		"0 0 * * * *":                   "not a known form",
	} {
		_, err := Parse(in)
		if err == nil {
			t.Errorf("Parse(%q) succeeded", in)
			continue
		}
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), want) ||
			!strings.Contains(err.Error(), "accepted forms:") || !strings.Contains(err.Error(), "Mon-Fri 08:00-18:00 every 1h") {
			t.Errorf("Parse(%q) = %v, want ErrInvalid naming %q and the forms", in, err, want)
		}
	}
}

type nextCase struct {
	expr  string
	after time.Time
	want  []time.Time // successive runs
}

func checkNext(t *testing.T, loc *time.Location, cases []nextCase) {
	t.Helper()
	for _, c := range cases {
		s := MustParse(c.expr).In(loc)
		at := c.after
		for i, want := range c.want {
			got := s.Next(at)
			if !got.Equal(want) {
				t.Errorf("%q in %s: run %d after %s = %s, want %s", c.expr, loc, i+1, at.UTC(), got.UTC(), want.UTC())
				break
			}
			if got.Location() != loc {
				t.Errorf("%q: Next is in %s, want %s", c.expr, got.Location(), loc)
			}
			at = got
		}
	}
}

func TestNextUTC(t *testing.T) {
	t.Parallel()
	checkNext(t, time.UTC, []nextCase{
		{"30 2 * * *", utc(2026, 1, 1, 0, 0), []time.Time{utc(2026, 1, 1, 2, 30), utc(2026, 1, 2, 2, 30)}},
		{"@hourly", utc(2026, 1, 1, 10, 15), []time.Time{utc(2026, 1, 1, 11, 0), utc(2026, 1, 1, 12, 0)}},
		{"@daily", utc(2026, 1, 1, 0, 0), []time.Time{utc(2026, 1, 2, 0, 0)}},
		{"@weekly", utc(2026, 1, 1, 0, 0), []time.Time{utc(2026, 1, 4, 0, 0), utc(2026, 1, 11, 0, 0)}},
		{"@monthly", utc(2026, 1, 15, 0, 0), []time.Time{utc(2026, 2, 1, 0, 0), utc(2026, 3, 1, 0, 0)}},
		{"every 6h", utc(2026, 1, 1, 5, 59), []time.Time{utc(2026, 1, 1, 6, 0), utc(2026, 1, 1, 12, 0)}},
		{"every 7m", utc(2026, 1, 1, 0, 0), []time.Time{utc(2026, 1, 1, 0, 7), utc(2026, 1, 1, 0, 14)}},
		{"every 10s", time.Date(1969, 12, 31, 23, 59, 45, 0, time.UTC), []time.Time{
			time.Date(1969, 12, 31, 23, 59, 50, 0, time.UTC), utc(1970, 1, 1, 0, 0), time.Date(1970, 1, 1, 0, 0, 10, 0, time.UTC)}},
		{"every 10s", time.Date(2026, 1, 1, 0, 0, 9, 999999999, time.UTC), []time.Time{time.Date(2026, 1, 1, 0, 0, 10, 0, time.UTC)}},
		{"daily 23:59", time.Date(2026, 1, 1, 23, 59, 30, 0, time.UTC), []time.Time{utc(2026, 1, 2, 23, 59)}},
		// 2 January 2026 is a Friday.
		{"Mon-Fri 08:00-18:00 every 1h", utc(2026, 1, 2, 7, 0), []time.Time{utc(2026, 1, 2, 8, 0), utc(2026, 1, 2, 9, 0)}},
		{"Mon-Fri 08:00-18:00 every 1h", utc(2026, 1, 2, 8, 30), []time.Time{utc(2026, 1, 2, 9, 0)}},
		{"Mon-Fri 08:00-18:00 every 1h", utc(2026, 1, 2, 17, 0), []time.Time{utc(2026, 1, 5, 8, 0)}},
		{"Mon-Fri 08:00-18:00 every 1h", utc(2026, 1, 3, 12, 0), []time.Time{utc(2026, 1, 5, 8, 0)}},
		{"Mon-Fri 08:00-18:00 every 7h", utc(2026, 1, 5, 8, 0), []time.Time{utc(2026, 1, 5, 15, 0), utc(2026, 1, 6, 8, 0)}},
		{"Fri 22:00-06:00 every 3h", utc(2026, 1, 3, 0, 0), []time.Time{utc(2026, 1, 3, 1, 0), utc(2026, 1, 3, 4, 0), utc(2026, 1, 9, 22, 0)}},
		{"Sat-Sun every 12h", utc(2026, 1, 2, 0, 0), []time.Time{utc(2026, 1, 3, 0, 0), utc(2026, 1, 3, 12, 0), utc(2026, 1, 4, 0, 0), utc(2026, 1, 4, 12, 0), utc(2026, 1, 10, 0, 0)}},
		// The 29th of February: 2100 is no leap year, a gap longer than
		// the five years robfig/cron searches.
		{"0 0 29 2 *", utc(2026, 1, 1, 0, 0), []time.Time{utc(2028, 2, 29, 0, 0)}},
		{"0 0 29 2 *", utc(2096, 3, 1, 0, 0), []time.Time{utc(2104, 2, 29, 0, 0)}},
		// Day of month and day of week both restricted: either matches.
		{"0 12 13 * 5", utc(2026, 1, 1, 0, 0), []time.Time{utc(2026, 1, 2, 12, 0), utc(2026, 1, 9, 12, 0), utc(2026, 1, 13, 12, 0), utc(2026, 1, 16, 12, 0)}},
	})
}

// TestNextDST pins what happens where Berlin's clock jumps: 2026-03-29
// 02:00 CET becomes 03:00 CEST (01:00 UTC); 2026-10-25 03:00 CEST becomes
// 02:00 CET (01:00 UTC).
func TestNextDST(t *testing.T) {
	t.Parallel()
	berlin := mustLoad(t, "Europe/Berlin")
	checkNext(t, berlin, []nextCase{
		// Skipped: 02:30 runs at the jump, 03:00 CEST, once.
		{"30 2 * * *", utc(2026, 3, 28, 1, 30), []time.Time{utc(2026, 3, 29, 1, 0), utc(2026, 3, 30, 0, 30)}},
		{"*/20 2 * * *", utc(2026, 3, 29, 0, 0), []time.Time{utc(2026, 3, 29, 1, 0), utc(2026, 3, 30, 0, 0)}},
		{"0 * * * *", utc(2026, 3, 29, 0, 0), []time.Time{utc(2026, 3, 29, 1, 0), utc(2026, 3, 29, 2, 0)}},
		{"daily 02:00", utc(2026, 3, 28, 12, 0), []time.Time{utc(2026, 3, 29, 1, 0), utc(2026, 3, 30, 0, 0)}},
		// Repeated: 02:30 runs once, at 02:30 CEST; the day after 25h later.
		{"30 2 * * *", utc(2026, 10, 24, 0, 30), []time.Time{utc(2026, 10, 25, 0, 30), utc(2026, 10, 26, 1, 30)}},
		// Asked during the second 02:10 (CET), after the run at 02:30 CEST.
		{"30 2 * * *", utc(2026, 10, 25, 1, 10), []time.Time{utc(2026, 10, 26, 1, 30)}},
		// Hourly: 02:00 CEST, then 03:00 CET two hours later.
		{"0 * * * *", utc(2026, 10, 24, 23, 30), []time.Time{utc(2026, 10, 25, 0, 0), utc(2026, 10, 25, 2, 0), utc(2026, 10, 25, 3, 0)}},
		{"Sun 01:00-04:00 every 30m", utc(2026, 10, 25, 0, 0), []time.Time{utc(2026, 10, 25, 0, 30), utc(2026, 10, 25, 2, 0), utc(2026, 10, 25, 2, 30), utc(2026, 11, 1, 0, 0)}},
		// Elapsed time is not moved.
		{"every 1h", utc(2026, 10, 25, 0, 30), []time.Time{utc(2026, 10, 25, 1, 0), utc(2026, 10, 25, 2, 0)}},
		{"every 1d", utc(2026, 3, 28, 12, 0), []time.Time{utc(2026, 3, 29, 0, 0), utc(2026, 3, 30, 0, 0)}},
	})
	// West of UTC the jumps come at 02:00 local: 2026-03-08 02:00 EST
	// becomes 03:00 EDT (07:00 UTC); 2026-11-01 02:00 EDT becomes 01:00 EST
	// (06:00 UTC).
	checkNext(t, mustLoad(t, "America/New_York"), []nextCase{
		{"30 2 * * *", utc(2026, 3, 7, 7, 30), []time.Time{utc(2026, 3, 8, 7, 0), utc(2026, 3, 9, 6, 30)}},
		{"30 1 * * *", utc(2026, 10, 31, 5, 30), []time.Time{utc(2026, 11, 1, 5, 30), utc(2026, 11, 2, 6, 30)}},
	})
}

func TestInterval(t *testing.T) {
	t.Parallel()
	berlin := mustLoad(t, "Europe/Berlin")
	for _, c := range []struct {
		expr string
		loc  *time.Location
		want time.Duration
	}{
		{"30 2 * * *", time.UTC, 24 * time.Hour},
		{"@hourly", time.UTC, time.Hour},
		{"*/15 * * * *", time.UTC, 15 * time.Minute},
		{"@weekly", time.UTC, 7 * day},
		{"@monthly", time.UTC, 31 * day},
		{"0 9-17 * * 1-5", time.UTC, 64 * time.Hour},
		{"0 12 13 * 5", time.UTC, 7 * day},
		{"0 0 1,28 * *", time.UTC, 27 * day},
		{"0 0 * 2 1", time.UTC, 350 * day},   // Mondays in February: the 22nd to the 7th a year later
		{"0 0 29 2 *", time.UTC, 2921 * day}, // 2096-02-29 to 2104-02-29
		{"every 6h", time.UTC, 6 * time.Hour},
		{"daily 02:30", time.UTC, 24 * time.Hour},
		{"Mon-Fri 08:00-18:00 every 1h", time.UTC, 63 * time.Hour},
		{"Mon-Fri 08:00-18:00 every 7h", time.UTC, 65 * time.Hour},
		{"Fri 22:00-06:00 every 3h", time.UTC, 7*day - 6*time.Hour},
		{"Sat-Sun every 12h", time.UTC, 6*day - 12*time.Hour},
		{"30 2 * * *", berlin, 25 * time.Hour},
		{"@hourly", berlin, 2 * time.Hour},
		{"every 6h", berlin, 6 * time.Hour},
		{"Mon-Fri 08:00-18:00 every 1h", berlin, 64 * time.Hour},
		{"0 0 * * *", mustLoad(t, "America/New_York"), 25 * time.Hour},
		// Lord Howe moves by 30 minutes now, by an hour in the early 1980s.
		{"0 0 * * *", mustLoad(t, "Australia/Lord_Howe"), 25 * time.Hour},
		{"0 0 * * *", mustLoad(t, "Asia/Kolkata"), 24 * time.Hour},
	} {
		if got := MustParse(c.expr).In(c.loc).Interval(); got != c.want {
			t.Errorf("%q in %s: Interval = %s, want %s", c.expr, c.loc, got, c.want)
		}
	}
	if (Schedule{}).Interval() != 0 || !(Schedule{}).Next(utc(2026, 1, 1, 0, 0)).IsZero() {
		t.Error("the zero Schedule runs")
	}
}

// TestIntervalIsObserved walks consecutive runs and finds Interval as the
// longest gap between them: not only a bound, the bound that is reached.
func TestIntervalIsObserved(t *testing.T) {
	t.Parallel()
	berlin := mustLoad(t, "Europe/Berlin")
	for _, c := range []struct {
		expr     string
		loc      *time.Location
		from, to time.Time
	}{
		{"30 2 * * *", time.UTC, utc(2026, 1, 1, 0, 0), utc(2026, 2, 1, 0, 0)},
		{"0 9-17 * * 1-5", time.UTC, utc(2026, 1, 1, 0, 0), utc(2026, 2, 1, 0, 0)},
		{"@monthly", time.UTC, utc(2026, 1, 1, 0, 0), utc(2027, 1, 1, 0, 0)},
		{"Mon-Fri 08:00-18:00 every 1h", time.UTC, utc(2026, 1, 1, 0, 0), utc(2026, 2, 1, 0, 0)},
		{"Fri 22:00-06:00 every 3h", time.UTC, utc(2026, 1, 1, 0, 0), utc(2026, 2, 1, 0, 0)},
		{"30 2 * * *", berlin, utc(2026, 10, 1, 0, 0), utc(2026, 11, 1, 0, 0)},
		{"@hourly", berlin, utc(2026, 10, 20, 0, 0), utc(2026, 10, 30, 0, 0)},
		{"Mon-Fri 08:00-18:00 every 1h", berlin, utc(2026, 10, 1, 0, 0), utc(2026, 11, 1, 0, 0)},
	} {
		s := MustParse(c.expr).In(c.loc)
		var longest time.Duration
		prev := s.Next(c.from)
		for at := s.Next(prev); at.Before(c.to); prev, at = at, s.Next(at) {
			longest = max(longest, at.Sub(prev))
		}
		if longest != s.Interval() {
			t.Errorf("%q in %s: longest gap seen %s, Interval %s", c.expr, c.loc, longest, s.Interval())
		}
	}
}

func TestScheduleJSON(t *testing.T) {
	t.Parallel()
	berlin := mustLoad(t, "Europe/Berlin")
	type doc struct {
		Schedule Schedule `json:"schedule"`
	}
	b, err := json.Marshal(doc{MustParse("mon-fri 08:00-18:00 every 1h")})
	if err != nil || string(b) != `{"schedule":"Mon-Fri 08:00-18:00 every 1h"}` {
		t.Fatalf("Marshal = %s, %v", b, err)
	}
	d := doc{Schedule: Schedule{}.In(berlin)}
	if err := json.Unmarshal([]byte(`{"schedule":"30 2 * * *"}`), &d); err != nil {
		t.Fatal(err)
	}
	if d.Schedule.Location() != berlin || d.Schedule.Interval() != 25*time.Hour {
		t.Errorf("Unmarshal lost the time zone: %s, %s", d.Schedule.Location(), d.Schedule.Interval())
	}
	if err := json.Unmarshal([]byte(`{"schedule":"every 1s"}`), &d); !errors.Is(err, ErrInvalid) {
		t.Errorf("Unmarshal of a bad schedule: %v", err)
	}
}
