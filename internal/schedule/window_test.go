package schedule

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestParseWindow(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"":                      "",
		"  ":                    "",
		"Mon-Sun":               "",
		"00:00-24:00":           "",
		"Mon-Sun 00:00-24:00":   "",
		"sat-sun":               "Sat-Sun",
		"Sun,Sat":               "Sat-Sun",
		"22:00-06:00":           "22:00-06:00",
		"22:00-00:00":           "22:00-24:00",
		"Mon-Fri 20:00-24:00":   "Mon-Fri 20:00-24:00",
		"Fri-Mon":               "Mon,Fri-Sun",
		"mon,WED,fri 1:00-2:00": "Mon,Wed,Fri 01:00-02:00",
		"Mon-Sun 8:00-9:00":     "08:00-09:00",
	} {
		w, err := ParseWindow(in)
		if err != nil {
			t.Errorf("ParseWindow(%q): %v", in, err)
			continue
		}
		if w.String() != want || w.IsZero() != (want == "") {
			t.Errorf("ParseWindow(%q) = %q (zero %v), want %q", in, w.String(), w.IsZero(), want)
		}
		if again, err := ParseWindow(w.String()); err != nil || again != w {
			t.Errorf("ParseWindow(%q) = %v, %v: does not round-trip", w.String(), again, err)
		}
	}
	for in, want := range map[string]string{
		"Mon-Fri 08:00":       "not a time range",
		"25:00-26:00":         "not a time of day",
		"08:00-24:01":         "not a time of day",
		"24:00-08:00":         "not a time of day",
		"Mon Tue":             "not a time range",
		"08:00-18:00 Mon":     "days come first",
		"Mon 08:00-09:00 Tue": "a window is",
		"Monday":              `"Monday" is not a day`,
		"10:00-10:00":         "is empty",
		"every 1h":            `"every" is not a day`,
	} {
		_, err := ParseWindow(in)
		if !errors.Is(err, ErrInvalid) || err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "accepted forms:") {
			t.Errorf("ParseWindow(%q) = %v, want ErrInvalid naming %q and the forms", in, err, want)
		}
	}
}

func TestWindowOpen(t *testing.T) {
	t.Parallel()
	berlin := mustLoad(t, "Europe/Berlin")
	for _, c := range []struct {
		window      string
		loc         *time.Location
		at          time.Time
		from, until time.Time
	}{
		// 2 January 2026 is a Friday.
		{"Fri 22:00-06:00", time.UTC, utc(2026, 1, 2, 21, 59), utc(2026, 1, 2, 22, 0), utc(2026, 1, 3, 6, 0)},
		{"Fri 22:00-06:00", time.UTC, utc(2026, 1, 2, 22, 0), utc(2026, 1, 2, 22, 0), utc(2026, 1, 3, 6, 0)},
		{"Fri 22:00-06:00", time.UTC, utc(2026, 1, 3, 5, 59), utc(2026, 1, 3, 5, 59), utc(2026, 1, 3, 6, 0)},
		{"Fri 22:00-06:00", time.UTC, utc(2026, 1, 3, 6, 0), utc(2026, 1, 9, 22, 0), utc(2026, 1, 10, 6, 0)},
		{"Sat-Sun", time.UTC, utc(2026, 1, 5, 0, 0), utc(2026, 1, 10, 0, 0), utc(2026, 1, 11, 0, 0)},
		{"22:00-24:00", time.UTC, utc(2026, 1, 5, 23, 0), utc(2026, 1, 5, 23, 0), utc(2026, 1, 6, 0, 0)},
		{"Mon-Fri 08:00-18:00", berlin, utc(2026, 1, 2, 12, 0), utc(2026, 1, 2, 12, 0), utc(2026, 1, 2, 17, 0)},
		// 2026-03-29: 02:00 to 03:00 is skipped, so that night's opening
		// is empty; the next is the day after.
		{"02:00-03:00", berlin, utc(2026, 3, 29, 0, 0), utc(2026, 3, 30, 0, 0), utc(2026, 3, 30, 1, 0)},
		{"02:30-04:00", berlin, utc(2026, 3, 29, 0, 0), utc(2026, 3, 29, 1, 0), utc(2026, 3, 29, 2, 0)},
		// 2026-10-25: 02:00 to 03:00 comes twice: open from the first
		// 02:00 (CEST) to 03:00 (CET), two hours.
		{"02:00-03:00", berlin, utc(2026, 10, 24, 23, 0), utc(2026, 10, 25, 0, 0), utc(2026, 10, 25, 2, 0)},
		{"02:00-03:00", berlin, utc(2026, 10, 25, 1, 30), utc(2026, 10, 25, 1, 30), utc(2026, 10, 25, 2, 0)},
	} {
		w, err := ParseWindow(c.window)
		if err != nil {
			t.Fatal(err)
		}
		w = w.In(c.loc)
		from, until := w.Open(c.at)
		if !from.Equal(c.from) || !until.Equal(c.until) {
			t.Errorf("%q in %s: Open(%s) = %s, %s; want %s, %s", c.window, c.loc, c.at, from.UTC(), until.UTC(), c.from, c.until)
		}
		if inside := c.from.Equal(c.at); w.Contains(c.at) != inside {
			t.Errorf("%q in %s: Contains(%s) = %v, want %v", c.window, c.loc, c.at, !inside, inside)
		}
	}
	var always Window
	if from, until := always.Open(utc(2026, 1, 1, 0, 0)); !from.Equal(utc(2026, 1, 1, 0, 0)) || !until.IsZero() || !always.Contains(from) || always.MaxClosed() != 0 {
		t.Error("the zero Window is not always open")
	}
}

func TestWindowMaxClosed(t *testing.T) {
	t.Parallel()
	berlin := mustLoad(t, "Europe/Berlin")
	for _, c := range []struct {
		window string
		loc    *time.Location
		want   time.Duration
	}{
		{"Sat-Sun", time.UTC, 5 * day},
		{"22:00-06:00", time.UTC, 16 * time.Hour},
		{"Fri 22:00-06:00", time.UTC, 7*day - 8*time.Hour},
		{"Mon,Thu 01:00-02:00", time.UTC, 4*day - time.Hour},
		{"22:00-06:00", berlin, 17 * time.Hour},
	} {
		w, err := ParseWindow(c.window)
		if err != nil {
			t.Fatal(err)
		}
		if got := w.In(c.loc).MaxClosed(); got != c.want {
			t.Errorf("%q in %s: MaxClosed = %s, want %s", c.window, c.loc, got, c.want)
		}
	}
}

func TestWindowJSON(t *testing.T) {
	t.Parallel()
	berlin := mustLoad(t, "Europe/Berlin")
	var w Window
	w = w.In(berlin)
	if err := json.Unmarshal([]byte(`"mon-fri 22:00-06:00"`), &w); err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(w)
	if err != nil || string(b) != `"Mon-Fri 22:00-06:00"` {
		t.Errorf("Marshal = %s, %v", b, err)
	}
	// Friday 2 January 2026 22:30 in Berlin is 21:30 UTC; 21:30 there is 20:30.
	if !w.Contains(utc(2026, 1, 2, 21, 30)) || w.Contains(utc(2026, 1, 2, 20, 30)) {
		t.Error("Unmarshal lost the time zone")
	}
}
