package retention

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func names(items []Item) []string {
	var out []string
	for _, it := range items {
		out = append(out, it.Name)
	}
	return out
}

func keptNames(k []Kept) []string {
	var out []string
	for _, it := range k {
		out = append(out, it.Item.Name)
	}
	return out
}

func TestApply(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	var items []Item
	// Two a day for five days: d0a, d0b (an hour later), d1a, ...
	for d := range 5 {
		for i, s := range []string{"a", "b"} {
			items = append(items, Item{Name: fmt.Sprintf("d%d%s", d, s), Time: t0.AddDate(0, 0, d).Add(time.Duration(i) * time.Hour), Seq: int64(2*d + i + 1)})
		}
	}
	rand.Shuffle(len(items), func(i, j int) { items[i], items[j] = items[j], items[i] })
	for _, c := range []struct {
		r          Rules
		keep, gone []string
	}{
		{Rules{Last: 3}, []string{"d4b", "d4a", "d3b"}, []string{"d3a", "d2b", "d2a", "d1b", "d1a", "d0b", "d0a"}},
		{Rules{Daily: 2}, []string{"d4b", "d3b"}, []string{"d4a", "d3a", "d2b", "d2a", "d1b", "d1a", "d0b", "d0a"}},
		// The oldest is kept too, as restic does.
		{Rules{Daily: -1}, []string{"d4b", "d3b", "d2b", "d1b", "d0b", "d0a"}, []string{"d4a", "d3a", "d2a", "d1a"}},
		{Rules{Last: 1, Daily: 2}, []string{"d4b", "d3b"}, []string{"d4a", "d3a", "d2b", "d2a", "d1b", "d1a", "d0b", "d0a"}},
		// Strictly newer than two days before the newest.
		{Rules{Within: Duration{Days: 2}}, []string{"d4b", "d4a", "d3b", "d3a"}, []string{"d2b", "d2a", "d1b", "d1a", "d0b", "d0a"}},
		// More buckets than items: the oldest is kept too.
		{Rules{Weekly: 5}, []string{"d4b", "d0a"}, nil},
		{Rules{}, []string{"d4b", "d4a", "d3b", "d3a", "d2b", "d2a", "d1b", "d1a", "d0b", "d0a"}, nil},
	} {
		keep, gone := Apply(items, c.r, time.UTC)
		if c.r.Weekly == 5 {
			// 2026-03-01 is a Sunday: d0 is one ISO week, d1..d4 the next.
			c.keep, c.gone = []string{"d4b", "d0b", "d0a"}, []string{"d4a", "d3b", "d3a", "d2b", "d2a", "d1b", "d1a"}
		}
		if !slices.Equal(keptNames(keep), c.keep) || !slices.Equal(names(gone), c.gone) {
			t.Errorf("%+v: keep %v forget %v, want %v and %v", c.r, keptNames(keep), names(gone), c.keep, c.gone)
		}
	}
	// Equal times: the sequence number orders them.
	same := []Item{{Name: "x", Time: t0, Seq: 1}, {Name: "y", Time: t0, Seq: 2}}
	if keep, _ := Apply(same, Rules{Last: 1}, time.UTC); len(keep) != 1 || keep[0].Item.Name != "y" {
		t.Errorf("equal times: kept %v, want y (the later arrival)", keptNames(keep))
	}
}

// Property: every item is either kept or forgotten, never both; nothing
// is forgotten under empty rules; keep-last n keeps the n newest.
func TestApplyProperties(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 2))
	t0 := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	for range 200 {
		n := rng.IntN(40)
		items := make([]Item, n)
		for i := range items {
			items[i] = Item{Name: fmt.Sprintf("s%03d", i), Time: t0.Add(time.Duration(rng.IntN(24*400)) * time.Hour), Seq: int64(i + 1)}
		}
		r := Rules{Last: rng.IntN(4), Daily: rng.IntN(4) - 1, Monthly: rng.IntN(3), Yearly: rng.IntN(2)}
		keep, gone := Apply(items, r, time.UTC)
		if len(keep)+len(gone) != n {
			t.Fatalf("%d items, kept %d, forgot %d", n, len(keep), len(gone))
		}
		seen := map[string]bool{}
		for _, k := range append(keptNames(keep), names(gone)...) {
			if seen[k] {
				t.Fatalf("%s twice", k)
			}
			seen[k] = true
		}
		if n > 0 && !r.Empty() && len(keep) == 0 {
			t.Fatalf("rules %+v kept nothing of %d", r, n)
		}
		if r.Last > 0 {
			byTime := slices.Clone(items)
			slices.SortFunc(byTime, func(a, b Item) int { return b.Time.Compare(a.Time)*4 + int(min(max(b.Seq-a.Seq, -1), 1)) })
			for _, it := range byTime[:min(r.Last, n)] {
				if !slices.Contains(keptNames(keep), it.Name) {
					t.Fatalf("keep-last %d forgot %s", r.Last, it.Name)
				}
			}
		}
	}
}
