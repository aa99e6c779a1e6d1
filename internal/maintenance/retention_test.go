package maintenance

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/coffer-backup/coffer/internal/repository"
	"github.com/coffer-backup/coffer/internal/retention"
)

// The server's retention (package retention, on arrival stamps) and forget
// (on snapshots) keep the same snapshots for the same rules.
func TestRetentionMatchesForget(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(7, 8))
	t0 := time.Date(2021, 5, 1, 0, 0, 0, 0, time.UTC)
	now := t0.AddDate(3, 0, 0)
	for range 300 {
		n := 1 + rng.IntN(30)
		var snaps []*repository.Snapshot
		var items []retention.Item
		for i := range n {
			tm := t0.Add(time.Duration(rng.IntN(24*700)) * time.Hour)
			s := snap(i, tm)
			snaps = append(snaps, s)
			items = append(items, retention.Item{Name: s.ID.String(), Time: tm, Seq: int64(i)})
		}
		p := Policy{Last: rng.IntN(3), Hourly: rng.IntN(3) - 1, Daily: rng.IntN(4) - 1, Weekly: rng.IntN(3), Monthly: rng.IntN(3), Yearly: rng.IntN(2)}
		if rng.IntN(3) == 0 {
			p.Within = Duration{Days: rng.IntN(60)}
		}
		if p.Empty() {
			continue
		}
		keepA, _ := ApplyPolicy(snaps, p, now)
		keepB, _ := retention.Apply(items, retention.Rules{Last: p.Last, Hourly: p.Hourly, Daily: p.Daily, Weekly: p.Weekly,
			Monthly: p.Monthly, Yearly: p.Yearly, Within: p.Within}, time.UTC)
		var a, b []string
		for _, k := range keepA {
			a = append(a, k.Snapshot.ID.String())
		}
		for _, k := range keepB {
			b = append(b, k.Item.Name)
		}
		slices.Sort(a)
		slices.Sort(b)
		if !slices.Equal(a, b) {
			t.Fatalf("policy %+v: forget keeps %v, retention %v", p, a, b)
		}
	}
}
