// Package schedule is the fleet's schedule engine, shared by server and agent:
// schedule expressions, next runs, windows, jitter, retries and missed runs.
package schedule

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

// ErrInvalid is wrapped by every error about a bad schedule, window or
// timing; the message names what was wrong and shows the accepted forms.
var ErrInvalid = errors.New("invalid")

// Forms lists the schedule expressions Parse accepts.
const Forms = `cron's five fields "MIN HOUR DOM MON DOW" (e.g. "30 2 * * *"), ` +
	`@hourly, @daily, @weekly, @monthly, "every DURATION" (e.g. "every 6h", at least 10s), ` +
	`"daily HH:MM" (e.g. "daily 02:30"), "DAYS HH:MM-HH:MM every DURATION" (e.g. "Mon-Fri 08:00-18:00 every 1h")`

const (
	// MinInterval is the shortest interval "every" accepts.
	MinInterval = 10 * time.Second
	// MaxInterval is the longest.
	MaxInterval = 366 * day
)

type kind uint8

const (
	kindNone   kind = iota
	kindCron        // five fields, a descriptor or "daily HH:MM"
	kindEvery       // every DURATION
	kindWindow      // DAYS HH:MM-HH:MM every DURATION
)

// A Schedule is a parsed schedule expression, evaluated in a time zone (UTC
// unless set with In). The zero Schedule never fires. Schedules are values:
// copy and compare them freely, from any goroutine.
type Schedule struct {
	text string
	kind kind
	spec cron.SpecSchedule // kindCron, with Location UTC: it runs on wall times
	step time.Duration     // kindEvery, kindWindow
	span span              // kindWindow
	gap  time.Duration     // the longest gap between runs on the wall clock
	loc  *time.Location
	jump time.Duration // backwardJump(loc)
}

var cronParser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// Parse reads a schedule expression, one of Forms. Words are separated by
// any white space; keywords, day and month names may be in any case.
func Parse(expr string) (Schedule, error) {
	s, err := parseFields(strings.Fields(expr))
	if err != nil {
		return Schedule{}, syntaxError("schedule", expr, err, Forms)
	}
	return s, nil
}

func syntaxError(what, expr string, reason error, forms string) error {
	return fmt.Errorf("%w %s %q: %v; accepted forms: %s", ErrInvalid, what, expr, reason, forms)
}

// MustParse is Parse for expressions known to be valid; it panics on error.
func MustParse(expr string) Schedule {
	s, err := Parse(expr)
	if err != nil {
		panic(err)
	}
	return s
}

func parseFields(f []string) (Schedule, error) {
	switch {
	case len(f) == 0:
		return Schedule{}, errors.New("empty expression")
	case strings.HasPrefix(f[0], "@"):
		return parseDescriptor(f)
	case strings.EqualFold(f[0], "every"):
		return parseEvery(f)
	case strings.EqualFold(f[0], "daily"):
		return parseDaily(f)
	}
	for i, w := range f {
		if strings.EqualFold(w, "every") {
			return parseWindowEvery(f[:i], f[i+1:])
		}
	}
	if len(f) == 5 {
		return parseCron(f)
	}
	if _, err := parseSpan(f); err == nil {
		return Schedule{}, errors.New(`a window needs an interval, as in "Mon-Fri 08:00-18:00 every 1h"`)
	}
	return Schedule{}, fmt.Errorf("not a known form (%d fields; cron needs exactly 5)", len(f))
}

func parseDescriptor(f []string) (Schedule, error) {
	d := strings.ToLower(f[0])
	switch {
	case len(f) != 1 && d == "@every":
		return Schedule{}, errors.New(`write "every DURATION", not "@every"`)
	case len(f) != 1:
		return Schedule{}, fmt.Errorf("%s takes nothing after it", f[0])
	}
	switch d {
	case "@hourly", "@daily", "@weekly", "@monthly":
		return compileCron(d)
	}
	return Schedule{}, fmt.Errorf("unknown descriptor %s (use @hourly, @daily, @weekly or @monthly)", f[0])
}

func parseEvery(f []string) (Schedule, error) {
	if len(f) != 2 {
		return Schedule{}, errors.New(`"every" takes one duration, as in "every 6h"`)
	}
	step, err := parseInterval(f[1])
	if err != nil {
		return Schedule{}, err
	}
	return Schedule{text: "every " + formatInterval(step), kind: kindEvery, step: step, gap: step}, nil
}

func parseDaily(f []string) (Schedule, error) {
	if len(f) != 2 {
		return Schedule{}, errors.New(`"daily" takes one time of day, as in "daily 02:30"`)
	}
	m, err := parseClock(f[1], false)
	if err != nil {
		return Schedule{}, err
	}
	s, err := compileCron(fmt.Sprintf("%d %d * * *", m%60, m/60))
	s.text = "daily " + formatClock(m)
	return s, err
}

func parseWindowEvery(window, interval []string) (Schedule, error) {
	if len(interval) != 1 {
		return Schedule{}, errors.New(`"every" takes one duration, as in "Mon-Fri 08:00-18:00 every 1h"`)
	}
	sp, err := parseSpan(window)
	if err != nil {
		return Schedule{}, err
	}
	step, err := parseInterval(interval[0])
	if err != nil {
		return Schedule{}, err
	}
	return Schedule{
		text: sp.String() + " every " + formatInterval(step),
		kind: kindWindow,
		step: step,
		span: sp,
		gap:  sp.firesGap(step),
	}, nil
}

func parseCron(f []string) (Schedule, error) {
	for _, w := range f {
		if strings.Contains(w, "=") {
			return Schedule{}, errors.New("a time zone is not part of the expression: it comes from the policy")
		}
	}
	return compileCron(strings.Join(f, " "))
}

// cronEpoch is where the search for a cron schedule's first run starts:
// the first day of a 400-year Gregorian cycle, so a schedule that matches
// some date matches one within the 5 years robfig/cron searches.
var cronEpoch = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

func compileCron(text string) (Schedule, error) {
	parsed, err := cronParser.Parse(text)
	if err != nil {
		return Schedule{}, fmt.Errorf("cron: %w", err)
	}
	spec, ok := parsed.(*cron.SpecSchedule)
	if !ok {
		return Schedule{}, fmt.Errorf("%s is not a calendar schedule", text)
	}
	s := Schedule{text: text, kind: kindCron, spec: *spec}
	s.spec.Location = time.UTC
	if s.spec.Next(cronEpoch).IsZero() {
		return Schedule{}, errors.New("the day-of-month and month fields match no date")
	}
	s.gap = cronGap(&s.spec)
	return s, nil
}

// In returns the schedule evaluated in loc (nil means UTC).
func (s Schedule) In(loc *time.Location) Schedule {
	if loc == nil {
		loc = time.UTC
	}
	s.loc = loc
	s.jump = backwardJump(loc)
	return s
}

// Location returns the time zone the schedule is evaluated in.
func (s Schedule) Location() *time.Location {
	if s.loc == nil {
		return time.UTC
	}
	return s.loc
}

// IsZero reports whether s is the zero Schedule, which never fires.
func (s Schedule) IsZero() bool { return s.kind == kindNone }

// String returns the expression in its canonical form, which Parse reads
// back to the same schedule: white space collapsed, keywords in lower case,
// intervals in largest units first ("every 1d12h"), days Monday first.
func (s Schedule) String() string { return s.text }

// MarshalText returns String, so a Schedule is a string in JSON.
func (s Schedule) MarshalText() ([]byte, error) { return []byte(s.text), nil }

// UnmarshalText parses text, keeping the receiver's time zone.
func (s *Schedule) UnmarshalText(text []byte) error {
	p, err := Parse(string(text))
	if err != nil {
		return err
	}
	*s = p.In(s.loc)
	return nil
}

// Next returns the first run strictly after the instant after, in the
// schedule's time zone; the zero time for the zero Schedule.
//
// "every D" runs at the whole multiples of D since the Unix epoch, on
// elapsed time: no time zone or clock change moves it ("every 6h" is 00:00,
// 06:00, 12:00 and 18:00 UTC). The other forms run on the wall clock of the
// time zone, and follow cron (Vixie cron's rule for fixed times) where
// daylight-saving time moves the clock: a run whose wall time is skipped
// when the clock goes forward (02:30 when 02:00 becomes 03:00) runs at the
// instant of the jump, 03:00; a run whose wall time comes twice when the
// clock goes back runs once, the first time. So "0 * * * *" waits two hours
// across the repeated hour, which Interval counts.
func (s Schedule) Next(after time.Time) time.Time {
	loc := s.Location()
	switch s.kind {
	case kindEvery:
		step := int64(s.step / time.Second)
		sec := after.Unix()
		slot := sec / step
		if sec%step < 0 {
			slot-- // floor for instants before 1970
		}
		return time.Unix((slot+1)*step, 0).In(loc)
	case kindCron, kindWindow:
		return s.nextCalendar(after, loc)
	}
	return time.Time{}
}

func (s Schedule) nextCalendar(after time.Time, loc *time.Location) time.Time {
	w := wallOf(after, loc)
	// A wall time in the repeated hour that already ran the first time
	// maps to an instant before after: step past it. The loop runs at most
	// once per run in that hour (360 for "every 10s").
	for range 100000 {
		w = s.nextWall(w)
		if w.IsZero() {
			return w
		}
		if t := instant(w, loc); t.After(after) {
			return t
		}
	}
	return time.Time{}
}

// nextWall returns the first wall time of a run strictly after wall time w.
func (s Schedule) nextWall(w time.Time) time.Time {
	if s.kind == kindWindow {
		return s.span.fires(w, s.step)
	}
	// robfig/cron gives up after five years; a 29 February can be eight
	// years away.
	for range 3 {
		if n := s.spec.Next(w); !n.IsZero() {
			return n
		}
		w = w.AddDate(5, 0, 0)
	}
	return time.Time{}
}

// Interval returns the schedule's cadence: the longest time between two
// consecutive runs, over the whole 400-year calendar and including the
// hour a daylight-saving change adds to the night the clocks go back (for
// "every" it is the interval itself). A backup is missed when none
// succeeded within this plus a grace period (see Timing.MissedAt).
func (s Schedule) Interval() time.Duration {
	switch s.kind {
	case kindEvery:
		return s.step
	case kindCron, kindWindow:
		return s.gap + s.jump
	}
	return 0
}

// cronGap returns the longest wall-clock gap between two runs of a
// five-field schedule: within a day, or from a matching day's last run to
// the next matching day's first, found over a 400-year Gregorian cycle.
func cronGap(spec *cron.SpecSchedule) time.Duration {
	var times []int // minutes after midnight
	for h := range 24 {
		for m := range 60 {
			if spec.Hour&(1<<h) != 0 && spec.Minute&(1<<m) != 0 {
				times = append(times, h*60+m)
			}
		}
	}
	intra := 0
	for i := 1; i < len(times); i++ {
		intra = max(intra, times[i]-times[i-1])
	}
	across := maxMatchGap(spec)*minutesDay - (times[len(times)-1] - times[0])
	return time.Duration(max(intra, across)) * time.Minute
}

// cycleDays is the length of the Gregorian calendar's 400-year cycle.
const cycleDays = 146097

// maxMatchGap returns the most days from one day the schedule's day and
// month fields match to the next. Which days of a month match depends only
// on its length and the weekday it starts on, so those 28 kinds of month
// are worked out first, then the cycle's 4800 months are walked.
func maxMatchGap(spec *cron.SpecSchedule) int {
	type monthDays struct{ first, last, gap int } // first 0: none match
	var kinds [4][7]monthDays                     // by length-28, first weekday
	for n := range 4 {
		for w0 := range 7 {
			k := &kinds[n][w0]
			for d := 1; d <= 28+n; d++ {
				if !dayMatches(spec, d, (w0+d-1)%7) {
					continue
				}
				if k.first == 0 {
					k.first = d
				} else {
					k.gap = max(k.gap, d-k.last)
				}
				k.last = d
			}
		}
	}
	first, prev, gap := -1, -1, 0
	start, wd := 0, int(time.Saturday) // 2000-01-01, in days since then
	for y := 2000; y < 2400; y++ {
		for m := 1; m <= 12; m++ {
			n := daysIn(y, m)
			if k := kinds[n-28][wd]; spec.Month&(1<<m) != 0 && k.first != 0 {
				if prev < 0 {
					first = start + k.first
				} else {
					gap = max(gap, start+k.first-prev)
				}
				gap = max(gap, k.gap)
				prev = start + k.last
			}
			start, wd = start+n, (wd+n)%7
		}
	}
	return max(gap, first+cycleDays-prev)
}

// starBit is robfig/cron's mark for a field written as "*" or "?".
const starBit = 1 << 63

// dayMatches is cron's day rule, as robfig/cron applies it: when both
// day-of-month and day-of-week are restricted, either may match.
func dayMatches(spec *cron.SpecSchedule, dom, dow int) bool {
	domMatch := spec.Dom&(1<<dom) != 0
	dowMatch := spec.Dow&(1<<dow) != 0
	if spec.Dom&starBit != 0 || spec.Dow&starBit != 0 {
		return domMatch && dowMatch
	}
	return domMatch || dowMatch
}

func daysIn(y, m int) int {
	switch m {
	case 2:
		if y%4 == 0 && (y%100 != 0 || y%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}
