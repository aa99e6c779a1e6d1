package maintenance

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coffer-backup/coffer/internal/repository"
)

var now = time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)

func snap(i int, t time.Time, tags ...string) *repository.Snapshot {
	var id repository.ID
	copy(id[:], fmt.Sprintf("%032d", i))
	return &repository.Snapshot{ID: id, Time: t, Hostname: "h", Paths: []string{"/p"}, Tags: tags}
}

// at parses "2006-01-02 15:04" in UTC.
func at(s string) time.Time {
	t, err := time.Parse("2006-01-02 15:04", s)
	if err != nil {
		panic(err)
	}
	return t
}

func series(times ...string) []*repository.Snapshot {
	out := make([]*repository.Snapshot, len(times))
	for i, s := range times {
		out[i] = snap(i, at(s))
	}
	return out
}

func keptTimes(k []Kept) []string {
	var out []string
	for _, x := range k {
		out = append(out, x.Snapshot.Time.Format("2006-01-02 15:04"))
	}
	return out
}

func TestApplyPolicyTable(t *testing.T) {
	t.Parallel()
	days := series("2026-11-24 10:00", "2026-11-24 08:00", "2026-11-23 23:00", "2026-11-23 01:00",
		"2026-11-22 12:00", "2026-11-20 12:00", "2026-11-16 12:00", "2026-11-09 12:00", "2026-10-01 12:00",
		"2025-12-31 12:00", "2024-06-01 12:00")
	for _, c := range []struct {
		name string
		p    Policy
		want []string
	}{
		{"last 3", Policy{Last: 3}, []string{"2026-11-24 10:00", "2026-11-24 08:00", "2026-11-23 23:00"}},
		{"last all", Policy{Last: -1}, keptTimes(allKept(days))},
		{"daily 3", Policy{Daily: 3}, []string{"2026-11-24 10:00", "2026-11-23 23:00", "2026-11-22 12:00"}},
		{"hourly 2", Policy{Hourly: 2}, []string{"2026-11-24 10:00", "2026-11-24 08:00"}},
		{"weekly 3", Policy{Weekly: 3}, []string{"2026-11-24 10:00", "2026-11-22 12:00", "2026-11-09 12:00"}},
		{"monthly 2", Policy{Monthly: 2}, []string{"2026-11-24 10:00", "2026-10-01 12:00"}},
		{"yearly 5 keeps the oldest too", Policy{Yearly: 5}, []string{"2026-11-24 10:00", "2025-12-31 12:00", "2024-06-01 12:00"}},
		{"within 2d of the newest", Policy{Within: Duration{Days: 2}}, []string{"2026-11-24 10:00", "2026-11-24 08:00", "2026-11-23 23:00", "2026-11-23 01:00", "2026-11-22 12:00"}},
		{"within 1m", Policy{Within: Duration{Months: 1}}, []string{"2026-11-24 10:00", "2026-11-24 08:00", "2026-11-23 23:00", "2026-11-23 01:00", "2026-11-22 12:00", "2026-11-20 12:00", "2026-11-16 12:00", "2026-11-09 12:00"}},
		{"daily within 3d", Policy{WithinDaily: Duration{Days: 3}}, []string{"2026-11-24 10:00", "2026-11-23 23:00", "2026-11-22 12:00"}},
		{"daily 1 + monthly 1 + yearly 1", Policy{Daily: 1, Monthly: 1, Yearly: 1}, []string{"2026-11-24 10:00"}},
		{"daily 2 + yearly 2", Policy{Daily: 2, Yearly: 2}, []string{"2026-11-24 10:00", "2026-11-23 23:00", "2025-12-31 12:00"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			keep, remove := ApplyPolicy(days, c.p, now)
			if got := keptTimes(keep); !slices.Equal(got, c.want) {
				t.Fatalf("kept %v\nwant %v", got, c.want)
			}
			if len(keep)+len(remove) != len(days) {
				t.Fatalf("%d kept + %d removed != %d", len(keep), len(remove), len(days))
			}
			for _, k := range keep {
				if len(k.Reasons) == 0 {
					t.Fatalf("%s kept without a reason", k.Snapshot.Time)
				}
			}
		})
	}
}

func allKept(s []*repository.Snapshot) []Kept {
	var out []Kept
	for _, x := range newestFirst(s) {
		out = append(out, Kept{Snapshot: x})
	}
	return out
}

func TestReasons(t *testing.T) {
	t.Parallel()
	s := series("2026-11-24 10:00", "2026-11-23 10:00")
	s[1].Tags = []string{"keep", "x"}
	keep, remove := ApplyPolicy(s, Policy{Last: 1, Daily: 1, Tags: []string{"keep,x"}}, now)
	if len(remove) != 0 || len(keep) != 2 {
		t.Fatalf("keep %v remove %v", keptTimes(keep), remove)
	}
	if want := []string{"last snapshot", "daily snapshot"}; !slices.Equal(keep[0].Reasons, want) {
		t.Fatalf("reasons %v, want %v", keep[0].Reasons, want)
	}
	if want := []string{"has tags [keep,x]"}; !slices.Equal(keep[1].Reasons, want) {
		t.Fatalf("reasons %v, want %v", keep[1].Reasons, want)
	}
}

func TestOldestKeptWhileCountsRemain(t *testing.T) {
	t.Parallel()
	// Three snapshots on one day with --keep-daily 5: the newest for the
	// day, and the oldest because counts are left (restic >= 0.16).
	s := series("2026-11-24 10:00", "2026-11-24 09:00", "2026-11-24 08:00")
	keep, _ := ApplyPolicy(s, Policy{Daily: 5}, now)
	if got := keptTimes(keep); !slices.Equal(got, []string{"2026-11-24 10:00", "2026-11-24 08:00"}) {
		t.Fatalf("kept %v", got)
	}
	if keep[1].Reasons[0] != "oldest daily snapshot" {
		t.Fatalf("reason %v", keep[1].Reasons)
	}
}

func TestWithinIsRelativeToNewestNotNow(t *testing.T) {
	t.Parallel()
	// Backups stopped a year ago: --keep-within 2d must not remove them all.
	s := series("2025-11-24 10:00", "2025-11-23 10:00", "2025-11-01 10:00")
	keep, remove := ApplyPolicy(s, Policy{Within: Duration{Days: 2}}, now)
	if len(keep) != 2 || len(remove) != 1 {
		t.Fatalf("kept %v", keptTimes(keep))
	}
}

func TestFutureSnapshotsCannotPushOutRealOnes(t *testing.T) {
	t.Parallel()
	s := series("2026-11-24 10:00", "2026-11-23 10:00", "2026-11-22 10:00")
	// A client with a forged clock adds snapshots dated in the future.
	for i := 0; i < 5; i++ {
		s = append(s, snap(100+i, now.AddDate(0, 0, 10+i)))
	}
	keep, remove := ApplyPolicy(s, Policy{Daily: 2, Within: Duration{Days: 1}}, now)
	got := keptTimes(keep)
	for _, want := range []string{"2026-11-24 10:00", "2026-11-23 10:00"} {
		if !slices.Contains(got, want) {
			t.Fatalf("real snapshot %s removed because of future ones: kept %v", want, got)
		}
	}
	if len(remove) != 1 || !remove[0].Time.Equal(at("2026-11-22 10:00")) {
		t.Fatalf("removed %v", remove)
	}
	for _, k := range keep {
		if k.Snapshot.Time.After(now.Add(FutureTolerance)) && k.Reasons[0] != "dated in the future" {
			t.Fatalf("future snapshot kept for %v", k.Reasons)
		}
	}
}

func TestEmptyPolicyRemovesNothing(t *testing.T) {
	t.Parallel()
	s := series("2026-11-24 10:00", "2026-11-23 10:00")
	if !(Policy{}).Empty() || (Policy{Tags: []string{"x"}}).Empty() || (Policy{Within: Duration{Hours: 1}}).Empty() {
		t.Fatal("Empty is wrong")
	}
	plans, err := PlanForget(s, repository.SnapshotFilter{}, DefaultGroupBy, Policy{}, now)
	if err != nil || len(plans) != 1 || len(plans[0].Remove) != 0 || len(plans[0].Keep) != 2 {
		t.Fatalf("empty policy: %+v %v", plans, err)
	}
	if _, err := PlanForget(s, repository.SnapshotFilter{}, DefaultGroupBy, Policy{Daily: -2}, now); !errors.Is(err, ErrBadPolicy) {
		t.Fatalf("negative count accepted: %v", err)
	}
}

func TestPlanForgetGroupsAndFilters(t *testing.T) {
	t.Parallel()
	var s []*repository.Snapshot
	for i := 0; i < 4; i++ {
		a := snap(i, now.Add(-time.Duration(i)*time.Hour))
		a.Hostname = "alpha"
		b := snap(10+i, now.Add(-time.Duration(i)*time.Hour))
		b.Hostname = "beta"
		c := snap(20+i, now.Add(-time.Duration(i)*time.Hour), "db")
		c.Hostname = "alpha"
		c.Paths = []string{"/var/db"}
		s = append(s, a, b, c)
	}
	plans, err := PlanForget(s, repository.SnapshotFilter{}, DefaultGroupBy, Policy{Last: 1}, now)
	if err != nil {
		t.Fatal(err)
	}
	if len(plans) != 3 {
		t.Fatalf("%d groups, want 3", len(plans))
	}
	for _, p := range plans {
		if len(p.Keep) != 1 || len(p.Remove) != 3 || !p.Keep[0].Snapshot.Time.Equal(now) {
			t.Fatalf("group %s: keep %v remove %d", p.Key, keptTimes(p.Keep), len(p.Remove))
		}
	}
	// Only host beta is considered: alpha's snapshots appear nowhere.
	plans, err = PlanForget(s, repository.SnapshotFilter{Hosts: []string{"beta"}}, DefaultGroupBy, Policy{Last: 1}, now)
	if err != nil || len(plans) != 1 || plans[0].Key.Hostname != "beta" || len(plans[0].Remove) != 3 {
		t.Fatalf("host filter: %+v %v", plans, err)
	}
	// No grouping: one group, one kept overall.
	plans, _ = PlanForget(s, repository.SnapshotFilter{}, GroupBy{}, Policy{Last: 1}, now)
	if len(plans) != 1 || len(plans[0].Keep) != 1 || len(plans[0].Remove) != 11 {
		t.Fatalf("no grouping: %d groups", len(plans))
	}
	// Tag filter with grouping by tags.
	plans, _ = PlanForget(s, repository.SnapshotFilter{Tags: []string{"db"}}, GroupBy{Tags: true}, Policy{Last: 2}, now)
	if len(plans) != 1 || !slices.Equal(plans[0].Key.Tags, []string{"db"}) || len(plans[0].Keep) != 2 {
		t.Fatalf("tag filter: %+v", plans)
	}
}

func TestParseGroupBy(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]GroupBy{"": {}, "host": {Host: true}, "host,paths": DefaultGroupBy,
		"tags,path": {Paths: true, Tags: true}, "host,paths,tags": {true, true, true}} {
		got, err := ParseGroupBy(in)
		if err != nil || got != want {
			t.Errorf("ParseGroupBy(%q) = %+v, %v", in, got, err)
		}
	}
	if _, err := ParseGroupBy("hosts,uid"); !errors.Is(err, ErrBadPolicy) {
		t.Error("unknown field accepted")
	}
}

func TestParseDuration(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		in   string
		want Duration
		ok   bool
	}{
		{"1y2m3d4h", Duration{Years: 1, Months: 2, Days: 3, Hours: 4}, true},
		{"36h", Duration{Hours: 36}, true},
		{"2d1y", Duration{Years: 1, Days: 2}, true},
		{"0d", Duration{}, true},
		{"", Duration{}, false},
		{"5", Duration{}, false},
		{"d", Duration{}, false},
		{"1w", Duration{}, false},
		{"1d1d", Duration{}, false},
		{"-1d", Duration{}, false},
		{"99999999999999999999d", Duration{}, false},
	} {
		got, err := ParseDuration(c.in)
		if (err == nil) != c.ok || got != c.want {
			t.Errorf("ParseDuration(%q) = %+v, %v", c.in, got, err)
		}
	}
	d := Duration{Years: 1, Months: 2, Days: 3, Hours: 4}
	if d.String() != "1y2m3d4h" {
		t.Fatal(d.String())
	}
	if got := d.Before(at("2026-06-10 12:00")); !got.Equal(at("2025-04-07 08:00")) {
		t.Fatalf("Before = %v", got)
	}
}

func FuzzParseDuration(f *testing.F) {
	for _, s := range []string{"1y2m3d4h", "36h", "", "1", "1x", "1000000y", "1d1d"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseDuration(s)
		if err != nil {
			return
		}
		back, err := ParseDuration(d.String())
		if err != nil || back != d {
			t.Fatalf("%q -> %+v -> %q -> %+v, %v", s, d, d.String(), back, err)
		}
		_ = d.Before(now)
	})
}

func randomSnapshots(rng *rand.Rand, n int) []*repository.Snapshot {
	out := make([]*repository.Snapshot, n)
	for i := range out {
		var tags []string
		if rng.IntN(4) == 0 {
			tags = []string{"t"}
		}
		// Mostly the last three years, some clustered within a day, a few in the future.
		var t time.Time
		switch rng.IntN(10) {
		case 0:
			t = now.Add(time.Duration(rng.IntN(48)) * time.Hour)
		case 1, 2:
			t = now.Add(-time.Duration(rng.IntN(24*60)) * time.Minute)
		default:
			t = now.Add(-time.Duration(rng.Int64N(int64(3 * 365 * 24 * time.Hour))))
		}
		out[i] = snap(i, t, tags...)
	}
	return out
}

func randomPolicy(rng *rand.Rand) Policy {
	c := func() int {
		switch rng.IntN(6) {
		case 0, 1, 2:
			return 0
		case 3:
			return -1
		}
		return rng.IntN(6)
	}
	p := Policy{Last: c(), Hourly: c(), Daily: c(), Weekly: c(), Monthly: c(), Yearly: c()}
	if rng.IntN(3) == 0 {
		p.Within = Duration{Days: rng.IntN(60)}
	}
	if rng.IntN(4) == 0 {
		p.WithinWeekly = Duration{Months: rng.IntN(12)}
	}
	if rng.IntN(5) == 0 {
		p.Tags = []string{"t"}
	}
	return p
}

func ids(s []*repository.Snapshot) []string {
	var out []string
	for _, x := range s {
		out = append(out, x.ID.String())
	}
	slices.Sort(out)
	return out
}

func keptIDs(k []Kept) []string {
	var s []*repository.Snapshot
	for _, x := range k {
		s = append(s, x.Snapshot)
	}
	return ids(s)
}

// TestPolicyProperties checks on random inputs: keep and remove partition
// the input; some snapshot survives whenever a count or within rule is set;
// applying the policy to what it kept removes nothing more; raising a count
// never removes a snapshot kept before; the result does not depend on the
// input order.
func TestPolicyProperties(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(7, 8))
	for iter := 0; iter < 3000; iter++ {
		snaps := randomSnapshots(rng, 1+rng.IntN(40))
		p := randomPolicy(rng)
		keep, remove := ApplyPolicy(snaps, p, now)
		all := append(keptIDs(keep), ids(remove)...)
		slices.Sort(all)
		if !slices.Equal(all, ids(snaps)) {
			t.Fatalf("keep+remove is not a partition of the input (policy %s)", p)
		}
		anyRule := p.Last != 0 || p.Hourly != 0 || p.Daily != 0 || p.Weekly != 0 || p.Monthly != 0 || p.Yearly != 0 || !p.Within.Zero()
		if anyRule && len(keep) == 0 {
			t.Fatalf("policy %s removed all %d snapshots", p, len(snaps))
		}
		var kept []*repository.Snapshot
		for _, k := range keep {
			kept = append(kept, k.Snapshot)
		}
		keep2, remove2 := ApplyPolicy(kept, p, now)
		if len(remove2) != 0 || !slices.Equal(keptIDs(keep2), keptIDs(keep)) {
			t.Fatalf("policy %s not idempotent: second run removes %d", p, len(remove2))
		}
		more := p
		if more.Daily >= 0 {
			more.Daily++
		}
		if more.Last >= 0 {
			more.Last++
		}
		keep3, _ := ApplyPolicy(snaps, more, now)
		k3 := keptIDs(keep3)
		for _, id := range keptIDs(keep) {
			if !slices.Contains(k3, id) {
				t.Fatalf("raising counts (%s -> %s) removed a kept snapshot", p, more)
			}
		}
		shuffled := slices.Clone(snaps)
		rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
		keep4, _ := ApplyPolicy(shuffled, p, now)
		if !slices.Equal(keptIDs(keep4), keptIDs(keep)) {
			t.Fatalf("result depends on input order (policy %s)", p)
		}
	}
}

func TestPolicyString(t *testing.T) {
	t.Parallel()
	p := Policy{Last: 2, Daily: -1, Within: Duration{Days: 3}, Tags: []string{"a"}}
	s := p.String()
	for _, want := range []string{"2 last", "all daily", "within 3d", "tags [a]"} {
		if !strings.Contains(s, want) {
			t.Fatalf("%q lacks %q", s, want)
		}
	}
}
