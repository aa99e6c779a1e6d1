package policy

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"
)

var (
	propSchedules = []string{"30 2 * * *", "*/15 * * * *", "0 9-17 * * mon-fri", "@hourly", "@daily", "@weekly", "@monthly",
		"every 10s", "every 6h", "every 1d12h", "daily 02:30", "Mon-Fri 08:00-18:00 every 1h", "Sat-Sun every 6h", "22:00-06:00 every 30m"}
	propWindows = []string{"", "Sat-Sun", "22:00-06:00", "Mon-Fri 20:00-24:00", "Mon,Wed,Fri"}
	propSubsets = []string{"", "10%", "0.5%", "100%", "1/5", "3/3", "500M", "2GiB"}
)

func pick[T any](r *rand.Rand, xs []T) T { return xs[r.IntN(len(xs))] }

func randName(r *rand.Rand, first, rest string, maxLen int) string {
	var b strings.Builder
	b.WriteRune(pick(r, []rune(first)))
	for range r.IntN(maxLen) {
		b.WriteRune(pick(r, []rune(rest)))
	}
	return strings.ReplaceAll(b.String(), "..", ".a")
}

func randPath(r *rand.Rand) string {
	var b strings.Builder
	for range 1 + r.IntN(4) {
		b.WriteString("/" + randName(r, "abcXYZ09 é", "abc.-_ ü", 12))
	}
	return b.String()
}

func randDuration(r *rand.Rand, max time.Duration) Duration {
	if r.IntN(3) == 0 {
		return 0
	}
	return Duration(time.Duration(r.Int64N(int64(max/time.Second))+1) * time.Second)
}

func randRepository(r *rand.Rand, i int) Repository {
	repo := Repository{
		Name:          fmt.Sprintf("%s%d", randName(r, "abc019", "abz09_-", 20), i),
		Location:      pick(r, []string{"", "coffer://backup.example/main", "coffer://10.0.0.1:8443/x_y", "s3:https://s3.example/b/p", "local:/srv/r", "/mnt/repo"}),
		ExcludeCaches: r.IntN(2) == 0,
		Schedule:      pick(r, propSchedules),
		Window:        pick(r, propWindows),
		Jitter:        randDuration(r, 7*24*time.Hour),
		Timeout:       randDuration(r, MaxTimeout),
		Grace:         randDuration(r, MaxGrace),
		Keep: Keep{Last: r.IntN(100) - 1, Hourly: r.IntN(50), Daily: r.IntN(50) - 1, Weekly: r.IntN(10),
			Monthly: r.IntN(MaxKeepCount + 1), Yearly: r.IntN(3) - 1, Within: pick(r, []string{"", "1y", "2m15d", "36h", "1y2m3d4h"})},
	}
	for range 1 + r.IntN(5) {
		repo.Paths = append(repo.Paths, randPath(r))
	}
	for range r.IntN(4) {
		repo.Excludes = append(repo.Excludes, pick(r, []string{"*.tmp", "/home/*/.cache", "**/node_modules", "!keep.me"}))
	}
	if r.IntN(2) == 0 {
		repo.Retry = Retry{Interval: Duration(time.Duration(1+r.IntN(86400)) * time.Second), Factor: pick(r, []float64{0, 1, 1.5, 1 + 99*r.Float64()}), Attempts: r.IntN(101)}
	}
	if r.IntN(2) == 0 {
		repo.Check = &Check{Schedule: pick(r, propSchedules), ReadDataSubset: pick(r, propSubsets)}
	}
	if r.IntN(2) == 0 {
		repo.Prune = &Prune{Schedule: pick(r, propSchedules)}
	}
	return repo
}

func randPolicy(r *rand.Rand) *Policy {
	p := &Policy{
		Version:         Version,
		Client:          randName(r, "abcdefghijklmnopqrstuvwxyz0123456789", "abcxyz0189.-_", 62),
		Generation:      1 + r.Uint64N(1<<53),
		Issued:          time.Unix(r.Int64N(4e9), r.Int64N(1e9)).UTC(),
		Repositories:    []Repository{},
		ReportFileNames: r.IntN(2) == 0,
	}
	for i := range r.IntN(MaxRepositories + 1) {
		p.Repositories = append(p.Repositories, randRepository(r, i))
	}
	if r.IntN(2) == 0 {
		p.RestoreRoot = randPath(r)
	}
	if r.IntN(2) == 0 {
		p.EscrowPublicKey = make([]byte, 32)
		for i := range p.EscrowPublicKey {
			p.EscrowPublicKey[i] = byte(r.IntN(256))
		}
	}
	return p
}

// TestPropertyRandomPolicies: every random valid policy signs, verifies
// back to itself, and is refused for another client, a later generation
// held, and any flipped byte.
func TestPropertyRandomPolicies(t *testing.T) {
	t.Parallel()
	seed := uint64(time.Now().UnixNano())
	r := rand.New(rand.NewPCG(seed, 12)) // #nosec G404 -- test data
	n := 100
	if testing.Short() {
		n = 20
	}
	for i := range n {
		p := randPolicy(r)
		signed, err := Sign(testKey, p)
		if err != nil {
			t.Fatalf("seed %d, policy %d: Sign: %v\n%+v", seed, i, err, p)
		}
		got, err := Verify(signed, testPub(), p.Client, p.Generation)
		if err != nil || !reflect.DeepEqual(got, p) {
			t.Fatalf("seed %d, policy %d: Verify = %v\n got %+v\nwant %+v", seed, i, err, got, p)
		}
		if _, err := Verify(signed, testPub(), p.Client+"x", 0); !errors.Is(err, ErrWrongClient) {
			t.Fatalf("seed %d, policy %d: another client: %v", seed, i, err)
		}
		if _, err := Verify(signed, testPub(), p.Client, p.Generation+1); !errors.Is(err, ErrReplayed) {
			t.Fatalf("seed %d, policy %d: replay: %v", seed, i, err)
		}
		if _, err := Verify(flip(signed, r.IntN(len(signed))), testPub(), p.Client, 0); !errors.Is(err, ErrBadSignature) {
			t.Fatalf("seed %d, policy %d: flipped byte: %v", seed, i, err)
		}
	}
}
