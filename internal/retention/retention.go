// Package retention holds the keep rules (keep-last, hourly, daily,
// weekly, monthly, yearly, within) on bare (time, name) pairs, without
// keys: forget applies them to snapshots, the server to its arrival stamps.
package retention

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Bucket maps a time (and the snapshot's position, newest first) to the
// bucket a count rule keeps one snapshot of.
type Bucket func(t time.Time, nr int) int

// The buckets of the count rules.
var (
	Unique Bucket = func(_ time.Time, nr int) int { return nr }
	Hour   Bucket = func(t time.Time, _ int) int {
		return t.Year()*1000000 + int(t.Month())*10000 + t.Day()*100 + t.Hour()
	}
	Day  Bucket = func(t time.Time, _ int) int { return t.Year()*10000 + int(t.Month())*100 + t.Day() }
	Week Bucket = func(t time.Time, _ int) int {
		y, w := t.ISOWeek()
		return y*100 + w
	}
	Month Bucket = func(t time.Time, _ int) int { return t.Year()*100 + int(t.Month()) }
	Year  Bucket = func(t time.Time, _ int) int { return t.Year() }
)

// Count is a keep-last/hourly/... rule: visited newest first, it keeps
// the first snapshot of each new bucket while its count lasts (negative:
// unlimited), and the oldest snapshot while count remains.
type Count struct {
	n      int
	bucket Bucket
	last   int
	reason string
}

// NewCount returns a count rule keeping n buckets (-1: all) of bucket,
// giving reason for what it keeps.
func NewCount(n int, bucket Bucket, reason string) *Count {
	return &Count{n: n, bucket: bucket, last: -1, reason: reason}
}

// Visit offers the snapshot at time t, position nr (newest first; oldest
// is the last one) and returns the reason it keeps it, if it does.
func (c *Count) Visit(t time.Time, nr int, oldest bool) (string, bool) {
	if c.n == 0 {
		return "", false
	}
	v := c.bucket(t, nr)
	if v == c.last && !oldest {
		return "", false
	}
	r := c.reason
	if v == c.last {
		r = "oldest " + r
	}
	c.last = v
	if c.n > 0 {
		c.n--
	}
	return r, true
}

// Rules are the keep rules the server applies on its stamps: counts of
// buckets from the newest snapshot (-1: every bucket), and Within, which
// keeps every snapshot newer than that span before the newest one.
type Rules struct {
	Last, Hourly, Daily, Weekly, Monthly, Yearly int
	Within                                       Duration
}

// Empty reports whether the rules keep nothing, and so say nothing: the
// server forgets nothing under empty rules.
func (r Rules) Empty() bool {
	return r.Last == 0 && r.Hourly == 0 && r.Daily == 0 && r.Weekly == 0 && r.Monthly == 0 && r.Yearly == 0 && r.Within.Zero()
}

// Item is one snapshot as the server knows it: its object name, its
// arrival time and its sequence number (the tie-breaker).
type Item struct {
	Name string
	Time time.Time
	Seq  int64
}

// Kept is an item the rules keep, with every rule that kept it.
type Kept struct {
	Item    Item
	Reasons []string
}

// Apply splits items into those to keep (with reasons) and those to
// forget, both newest first (by time, then sequence number), as forget
// does: each count rule keeps the first item of each new bucket until its
// count is used up; Within keeps items newer than the span before the
// newest. Times are bucketed in loc. Empty rules keep everything.
func Apply(items []Item, r Rules, loc *time.Location) (keep []Kept, forget []Item) {
	list := slices.Clone(items)
	slices.SortStableFunc(list, func(a, b Item) int {
		if c := b.Time.Compare(a.Time); c != 0 {
			return c
		}
		if b.Seq != a.Seq {
			return int(min(max(b.Seq-a.Seq, -1), 1))
		}
		return strings.Compare(b.Name, a.Name)
	})
	if r.Empty() {
		for _, it := range list {
			keep = append(keep, Kept{Item: it, Reasons: []string{"no keep rules"}})
		}
		return keep, nil
	}
	counts := []*Count{
		NewCount(r.Last, Unique, "last snapshot"), NewCount(r.Hourly, Hour, "hourly snapshot"),
		NewCount(r.Daily, Day, "daily snapshot"), NewCount(r.Weekly, Week, "weekly snapshot"),
		NewCount(r.Monthly, Month, "monthly snapshot"), NewCount(r.Yearly, Year, "yearly snapshot"),
	}
	for nr, it := range list {
		var reasons []string
		if !r.Within.Zero() && it.Time.After(r.Within.Before(list[0].Time)) {
			reasons = append(reasons, fmt.Sprintf("within %s", r.Within))
		}
		t := it.Time.In(loc)
		for _, c := range counts {
			if why, ok := c.Visit(t, nr, nr == len(list)-1); ok {
				reasons = append(reasons, why)
			}
		}
		if len(reasons) > 0 {
			keep = append(keep, Kept{Item: it, Reasons: reasons})
		} else {
			forget = append(forget, it)
		}
	}
	return keep, forget
}
