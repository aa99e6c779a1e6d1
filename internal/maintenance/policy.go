// Package maintenance decides which snapshots forget removes and reclaims
// unreferenced data with prune's two-phase, lock-aware deletion.
package maintenance

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/coffer-backup/coffer/internal/repository"
	"github.com/coffer-backup/coffer/internal/retention"
)

// ErrBadPolicy is returned for an invalid forget policy or grouping.
var ErrBadPolicy = errors.New("invalid forget policy")

// FutureTolerance is how far after "now" a snapshot may be dated and still
// take part in the policy. Later snapshots are always kept and fill no
// bucket: a client with a wrong (or forged) clock cannot push real snapshots
// out of retention (SECURITY-NOTES: forged snapshot times).
const FutureTolerance = time.Hour

// Policy says which snapshots of a group forget keeps. Counts are numbers of
// buckets counted from the newest snapshot; -1 keeps every bucket. A snapshot
// kept by any rule is kept.
type Policy struct {
	Last    int `json:"last,omitempty"`
	Hourly  int `json:"hourly,omitempty"`
	Daily   int `json:"daily,omitempty"`
	Weekly  int `json:"weekly,omitempty"`
	Monthly int `json:"monthly,omitempty"`
	Yearly  int `json:"yearly,omitempty"`
	// Within keeps every snapshot newer than this span before the newest
	// snapshot of the group that is not in the future.
	Within Duration `json:"within,omitzero"`
	// WithinHourly..WithinYearly keep one snapshot per bucket within the span.
	WithinHourly  Duration `json:"within_hourly,omitzero"`
	WithinDaily   Duration `json:"within_daily,omitzero"`
	WithinWeekly  Duration `json:"within_weekly,omitzero"`
	WithinMonthly Duration `json:"within_monthly,omitzero"`
	WithinYearly  Duration `json:"within_yearly,omitzero"`
	// Tags keeps snapshots matching any entry; an entry "a,b" needs both.
	Tags []string `json:"tags,omitempty"`
}

// Empty reports whether the policy keeps nothing and so says nothing:
// forget refuses to apply an empty policy instead of removing everything.
func (p Policy) Empty() bool {
	return p.Last == 0 && p.Hourly == 0 && p.Daily == 0 && p.Weekly == 0 && p.Monthly == 0 && p.Yearly == 0 &&
		p.Within.Zero() && p.WithinHourly.Zero() && p.WithinDaily.Zero() && p.WithinWeekly.Zero() &&
		p.WithinMonthly.Zero() && p.WithinYearly.Zero() && len(p.Tags) == 0
}

// Validate rejects counts below -1.
func (p Policy) Validate() error {
	for _, c := range []struct {
		n    int
		name string
	}{{p.Last, "last"}, {p.Hourly, "hourly"}, {p.Daily, "daily"}, {p.Weekly, "weekly"}, {p.Monthly, "monthly"}, {p.Yearly, "yearly"}} {
		if c.n < -1 {
			return fmt.Errorf("%w: --keep-%s %d (use -1 for all)", ErrBadPolicy, c.name, c.n)
		}
	}
	return nil
}

func (p Policy) String() string {
	var parts []string
	for _, c := range []struct {
		n    int
		name string
	}{{p.Last, "last"}, {p.Hourly, "hourly"}, {p.Daily, "daily"}, {p.Weekly, "weekly"}, {p.Monthly, "monthly"}, {p.Yearly, "yearly"}} {
		switch {
		case c.n > 0:
			parts = append(parts, fmt.Sprintf("%d %s", c.n, c.name))
		case c.n == -1:
			parts = append(parts, "all "+c.name)
		}
	}
	for _, w := range []struct {
		d    Duration
		name string
	}{{p.WithinHourly, "hourly"}, {p.WithinDaily, "daily"}, {p.WithinWeekly, "weekly"}, {p.WithinMonthly, "monthly"}, {p.WithinYearly, "yearly"}} {
		if !w.d.Zero() {
			parts = append(parts, fmt.Sprintf("%s within %s", w.name, w.d))
		}
	}
	if !p.Within.Zero() {
		parts = append(parts, fmt.Sprintf("all within %s of the newest", p.Within))
	}
	if len(p.Tags) > 0 {
		parts = append(parts, fmt.Sprintf("all with tags %v", p.Tags))
	}
	if len(parts) == 0 {
		return "keep nothing"
	}
	return "keep " + strings.Join(parts, ", ")
}

// Kept is a snapshot the policy keeps, with every rule that kept it.
type Kept struct {
	Snapshot *repository.Snapshot
	Reasons  []string
}

type bucketFunc = retention.Bucket

var (
	hourBucket   = retention.Hour
	dayBucket    = retention.Day
	weekBucket   = retention.Week
	monthBucket  = retention.Month
	yearBucket   = retention.Year
	uniqueBucket = retention.Unique
)

// Duration is a calendar span as --keep-within takes it (retention.Duration).
type Duration = retention.Duration

// ErrBadDuration is returned by ParseDuration.
var ErrBadDuration = retention.ErrBadDuration

// ParseDuration parses restic's duration syntax (retention.ParseDuration).
func ParseDuration(s string) (Duration, error) { return retention.ParseDuration(s) }

// newestFirst returns snaps sorted newest first, ties broken by ID so the
// result does not depend on the input order.
func newestFirst(snaps []*repository.Snapshot) []*repository.Snapshot {
	out := slices.Clone(snaps)
	slices.SortStableFunc(out, func(a, b *repository.Snapshot) int {
		if c := b.Time.Compare(a.Time); c != 0 {
			return c
		}
		return strings.Compare(b.ID.String(), a.ID.String())
	})
	return out
}

// ApplyPolicy splits one group of snapshots into those to keep (with
// reasons) and those to remove, as restic does: snapshots are visited newest
// first; each count rule keeps the first snapshot of every new bucket until
// its count is used up, and also the oldest snapshot while counts remain;
// --keep-within is measured from the newest snapshot that is not in the
// future. Times are bucketed in now's location. Snapshots dated after
// now+FutureTolerance are kept and do not use up counts. Both results are
// newest first. An empty policy keeps nothing: callers check Policy.Empty
// first, as PlanForget does.
func ApplyPolicy(snaps []*repository.Snapshot, p Policy, now time.Time) (keep []Kept, remove []*repository.Snapshot) {
	list := newestFirst(snaps)
	if len(list) == 0 {
		return nil, nil
	}
	keep, counted, latest := splitFuture(list, now)
	counts := []*retention.Count{
		retention.NewCount(p.Last, uniqueBucket, "last snapshot"),
		retention.NewCount(p.Hourly, hourBucket, "hourly snapshot"),
		retention.NewCount(p.Daily, dayBucket, "daily snapshot"),
		retention.NewCount(p.Weekly, weekBucket, "weekly snapshot"),
		retention.NewCount(p.Monthly, monthBucket, "monthly snapshot"),
		retention.NewCount(p.Yearly, yearBucket, "yearly snapshot"),
	}
	within := []*withinRule{
		{p.WithinHourly, hourBucket, -1, "hourly within"},
		{p.WithinDaily, dayBucket, -1, "daily within"},
		{p.WithinWeekly, weekBucket, -1, "weekly within"},
		{p.WithinMonthly, monthBucket, -1, "monthly within"},
		{p.WithinYearly, yearBucket, -1, "yearly within"},
	}
	for nr, s := range counted {
		t := s.Time.In(now.Location())
		oldest := nr == len(counted)-1
		reasons := fixedReasons(s, p, latest)
		for _, b := range counts {
			if r, ok := b.Visit(t, nr, oldest); ok {
				reasons = append(reasons, r)
			}
		}
		for _, w := range within {
			if r, ok := w.visit(s, t, nr, oldest, latest); ok {
				reasons = append(reasons, r)
			}
		}
		if len(reasons) > 0 {
			keep = append(keep, Kept{Snapshot: s, Reasons: reasons})
		} else {
			remove = append(remove, s)
		}
	}
	slices.SortStableFunc(keep, func(a, b Kept) int {
		if c := b.Snapshot.Time.Compare(a.Snapshot.Time); c != 0 {
			return c
		}
		return strings.Compare(b.Snapshot.ID.String(), a.Snapshot.ID.String())
	})
	return keep, remove
}

// splitFuture keeps the snapshots dated after now+FutureTolerance and
// returns the others (newest first, as given) with the time --keep-within
// counts from: the newest of them not after now, or now.
func splitFuture(list []*repository.Snapshot, now time.Time) (future []Kept, counted []*repository.Snapshot, latest time.Time) {
	limit := now.Add(FutureTolerance)
	for _, s := range list {
		if s.Time.After(limit) {
			future = append(future, Kept{Snapshot: s, Reasons: []string{"dated in the future"}})
			continue
		}
		counted = append(counted, s)
		if !s.Time.After(now) && (latest.IsZero() || s.Time.After(latest)) {
			latest = s.Time
		}
	}
	if latest.IsZero() {
		latest = now
	}
	return future, counted, latest
}

// fixedReasons are the reasons that do not depend on other snapshots:
// --keep-tag and --keep-within.
func fixedReasons(s *repository.Snapshot, p Policy, latest time.Time) []string {
	var reasons []string
	for _, tl := range p.Tags {
		if s.HasTags([]string{tl}) {
			reasons = append(reasons, fmt.Sprintf("has tags [%s]", tl))
		}
	}
	if !p.Within.Zero() && s.Time.After(p.Within.Before(latest)) {
		reasons = append(reasons, fmt.Sprintf("within %s", p.Within))
	}
	return reasons
}

// withinRule is a --keep-within-hourly/... rule: one snapshot per bucket
// within d of the newest snapshot, and the oldest snapshot within it.
type withinRule struct {
	d      Duration
	bucket bucketFunc
	last   int
	reason string
}

func (w *withinRule) visit(s *repository.Snapshot, t time.Time, nr int, oldest bool, latest time.Time) (string, bool) {
	if w.d.Zero() || !s.Time.After(w.d.Before(latest)) {
		return "", false
	}
	v := w.bucket(t, nr)
	if v == w.last && !oldest {
		return "", false
	}
	r := w.reason
	if v == w.last {
		r = "oldest " + r
	}
	w.last = v
	return fmt.Sprintf("%s %s", r, w.d), true
}

// GroupBy says which snapshot fields separate forget's groups.
type GroupBy struct {
	Host, Paths, Tags bool
}

// DefaultGroupBy groups by host and paths, as restic does.
var DefaultGroupBy = GroupBy{Host: true, Paths: true}

// ParseGroupBy parses "host,paths,tags" (any subset; "path" and "tag" are
// accepted too). The empty string puts all snapshots in one group.
func ParseGroupBy(s string) (GroupBy, error) {
	var g GroupBy
	if s == "" {
		return g, nil
	}
	for _, f := range strings.Split(s, ",") {
		switch strings.TrimSpace(f) {
		case "host", "hostname":
			g.Host = true
		case "paths", "path":
			g.Paths = true
		case "tags", "tag":
			g.Tags = true
		default:
			return g, fmt.Errorf("%w: unknown --group-by field %q (want host, paths, tags)", ErrBadPolicy, f)
		}
	}
	return g, nil
}

// GroupKey identifies a group; fields not grouped by are empty.
type GroupKey struct {
	Hostname string   `json:"hostname,omitempty"`
	Paths    []string `json:"paths,omitempty"`
	Tags     []string `json:"tags,omitempty"`
}

func (k GroupKey) String() string {
	var parts []string
	if k.Hostname != "" {
		parts = append(parts, "host "+k.Hostname)
	}
	if len(k.Paths) > 0 {
		parts = append(parts, "paths ["+strings.Join(k.Paths, ", ")+"]")
	}
	if len(k.Tags) > 0 {
		parts = append(parts, "tags ["+strings.Join(k.Tags, ", ")+"]")
	}
	if len(parts) == 0 {
		return "all snapshots"
	}
	return strings.Join(parts, ", ")
}

func (k GroupKey) sortKey() string {
	return k.Hostname + "\x00" + strings.Join(k.Paths, "\x01") + "\x00" + strings.Join(k.Tags, "\x01")
}

// Group is snapshots sharing a key.
type Group struct {
	Key       GroupKey
	Snapshots []*repository.Snapshot
}

// GroupSnapshots splits snaps by the fields of by, in a stable key order.
func GroupSnapshots(snaps []*repository.Snapshot, by GroupBy) []Group {
	idx := map[string]int{}
	var groups []Group
	for _, s := range snaps {
		var k GroupKey
		if by.Host {
			k.Hostname = s.Hostname
		}
		if by.Paths {
			k.Paths = slices.Clone(s.Paths)
			slices.Sort(k.Paths)
		}
		if by.Tags {
			k.Tags = slices.Clone(s.Tags)
			slices.Sort(k.Tags)
			k.Tags = slices.Compact(k.Tags)
		}
		sk := k.sortKey()
		i, ok := idx[sk]
		if !ok {
			i = len(groups)
			idx[sk] = i
			groups = append(groups, Group{Key: k})
		}
		groups[i].Snapshots = append(groups[i].Snapshots, s)
	}
	slices.SortFunc(groups, func(a, b Group) int { return strings.Compare(a.Key.sortKey(), b.Key.sortKey()) })
	return groups
}

// ForgetPlan is the outcome of a policy for one group.
type ForgetPlan struct {
	Key    GroupKey
	Keep   []Kept
	Remove []*repository.Snapshot
}

// PlanForget selects the snapshots that pass filter, groups them and applies
// the policy to each group. Snapshots the filter rejects appear nowhere: they
// are neither kept nor removed. An empty policy removes nothing.
func PlanForget(snaps []*repository.Snapshot, filter repository.SnapshotFilter, by GroupBy, p Policy, now time.Time) ([]ForgetPlan, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	var sel []*repository.Snapshot
	for _, s := range snaps {
		if filter.Match(s) {
			sel = append(sel, s)
		}
	}
	var out []ForgetPlan
	for _, g := range GroupSnapshots(sel, by) {
		fp := ForgetPlan{Key: g.Key}
		if p.Empty() {
			for _, s := range newestFirst(g.Snapshots) {
				fp.Keep = append(fp.Keep, Kept{Snapshot: s, Reasons: []string{"no policy"}})
			}
		} else {
			fp.Keep, fp.Remove = ApplyPolicy(g.Snapshots, p, now)
		}
		out = append(out, fp)
	}
	return out, nil
}
