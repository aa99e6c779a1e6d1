package policy

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/coffer-backup/coffer/internal/schedule"
)

func TestValidateAcceptsValid(t *testing.T) {
	t.Parallel()
	if err := validPolicy().Validate(); err != nil {
		t.Fatal(err)
	}
	// The smallest policy: no repositories, defaults everywhere.
	p := &Policy{Version: Version, Client: "a", Generation: 1, Issued: time.Unix(1, 0)}
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	if p.Root() != DefaultRestoreRoot || validPolicy().Root() != "/srv/restore" {
		t.Fatalf("Root: %q, %q", p.Root(), validPolicy().Root())
	}
}

// TestValidateRefuses: each bad field is refused with ErrInvalid and an
// error naming it.
func TestValidateRefuses(t *testing.T) {
	t.Parallel()
	repo0 := func(f func(r *Repository)) func(p *Policy) { return func(p *Policy) { f(&p.Repositories[0]) } }
	cases := []struct {
		field string
		edit  func(p *Policy)
	}{
		{"client", func(p *Policy) { p.Client = "" }},
		{"client", func(p *Policy) { p.Client = "Web1" }},
		{"client", func(p *Policy) { p.Client = "-web" }},
		{"client", func(p *Policy) { p.Client = "a..b" }},
		{"client", func(p *Policy) { p.Client = strings.Repeat("a", 64) }},
		{"generation", func(p *Policy) { p.Generation = 0 }},
		{"issued", func(p *Policy) { p.Issued = time.Time{} }},
		{"repositories", func(p *Policy) { p.Repositories = make([]Repository, MaxRepositories+1) }},
		{"repositories[1].name", func(p *Policy) { p.Repositories[1].Name = p.Repositories[0].Name }},
		{"repositories[0].name", repo0(func(r *Repository) { r.Name = "" })},
		{"repositories[0].name", repo0(func(r *Repository) { r.Name = "a.b" })},
		{"repositories[0].name", repo0(func(r *Repository) { r.Name = strings.Repeat("a", 65) })},
		{"repositories[0].location", repo0(func(r *Repository) { r.Location = "relative/dir" })},
		{"repositories[0].location", repo0(func(r *Repository) { r.Location = "coffer://host/" })},
		{"repositories[0].location", repo0(func(r *Repository) { r.Location = "coffer://host/a/b" })},
		{"repositories[0].location", repo0(func(r *Repository) { r.Location = "coffer://u@host/a" })},
		{"repositories[0].location", repo0(func(r *Repository) { r.Location = "coffer:///a" })},
		{"repositories[0].location", repo0(func(r *Repository) { r.Location = "s3:ftp://host/b" })},
		{"repositories[0].location", repo0(func(r *Repository) { r.Location = "local:rel" })},
		{"repositories[0].location", repo0(func(r *Repository) { r.Location = "/x\n" })},
		{"repositories[0].location", repo0(func(r *Repository) { r.Location = "/" + strings.Repeat("x", MaxLocationLen) })},
		{"repositories[0].paths", repo0(func(r *Repository) { r.Paths = nil })},
		{"repositories[0].paths", repo0(func(r *Repository) { r.Paths = make([]string, MaxPaths+1) })},
		{"repositories[0].paths[1]", repo0(func(r *Repository) { r.Paths[1] = "home" })},
		{"repositories[0].paths[1]", repo0(func(r *Repository) { r.Paths[1] = "" })},
		{"repositories[0].paths[1]", repo0(func(r *Repository) { r.Paths[1] = "/a\x00b" })},
		{"repositories[0].paths[1]", repo0(func(r *Repository) { r.Paths[1] = "/" + strings.Repeat("a", MaxPathLen) })},
		{"repositories[0].excludes[0]", repo0(func(r *Repository) { r.Excludes[0] = "" })},
		{"repositories[0].excludes[1]", repo0(func(r *Repository) { r.Excludes[1] = "/a\xffb" })},
		{"repositories[0].excludes", repo0(func(r *Repository) { r.Excludes = make([]string, MaxExcludes+1) })},
		{"repositories[0].schedule", repo0(func(r *Repository) { r.Schedule = "" })},
		{"repositories[0].schedule", repo0(func(r *Repository) { r.Schedule = "every 5s" })},
		{"repositories[0].schedule", repo0(func(r *Repository) { r.Schedule = "61 * * * *" })},
		{"repositories[0].window", repo0(func(r *Repository) { r.Window = "Mon-Fri every 1h" })},
		{"repositories[0].jitter", repo0(func(r *Repository) { r.Jitter = Duration(schedule.MaxJitter + time.Second) })},
		{"repositories[0].retry.interval", repo0(func(r *Repository) { r.Retry.Interval = Duration(schedule.MaxRetryDelay + time.Second) })},
		{"repositories[0].retry", repo0(func(r *Repository) { r.Retry.Interval = Duration(time.Second / 2) })},
		{"repositories[0].retry", repo0(func(r *Repository) { r.Retry.Attempts = -1 })},
		{"repositories[0].retry", repo0(func(r *Repository) { r.Retry.Attempts = schedule.MaxRetryAttempts + 1 })},
		{"repositories[0].retry", repo0(func(r *Repository) { r.Retry.Factor = 0.5 })},
		{"repositories[0].retry", repo0(func(r *Repository) { r.Retry.Factor = schedule.MaxRetryFactor + 1 })},
		{"repositories[0].jitter", repo0(func(r *Repository) { r.Jitter = -1 })},
		{"repositories[0].timeout", repo0(func(r *Repository) { r.Timeout = -1 })},
		{"repositories[0].timeout", repo0(func(r *Repository) { r.Timeout = Duration(MaxTimeout + time.Second) })},
		{"repositories[0].grace", repo0(func(r *Repository) { r.Grace = Duration(MaxGrace + time.Second) })},
		{"repositories[0].check.schedule", repo0(func(r *Repository) { r.Check.Schedule = "" })},
		{"repositories[0].check.read_data_subset", repo0(func(r *Repository) { r.Check.ReadDataSubset = "0%" })},
		{"repositories[0].check.read_data_subset", repo0(func(r *Repository) { r.Check.ReadDataSubset = "101%" })},
		{"repositories[0].check.read_data_subset", repo0(func(r *Repository) { r.Check.ReadDataSubset = "3/2" })},
		{"repositories[0].check.read_data_subset", repo0(func(r *Repository) { r.Check.ReadDataSubset = "1/257" })},
		{"repositories[0].check.read_data_subset", repo0(func(r *Repository) { r.Check.ReadDataSubset = "lots" })},
		{"repositories[0].prune.schedule", repo0(func(r *Repository) { r.Prune.Schedule = "daily 25:00" })},
		{"repositories[0].keep.last", repo0(func(r *Repository) { r.Keep.Last = -2 })},
		{"repositories[0].keep.yearly", repo0(func(r *Repository) { r.Keep.Yearly = MaxKeepCount + 1 })},
		{"repositories[0].keep.within", repo0(func(r *Repository) { r.Keep.Within = "1w" })},
		{"repositories[0].keep.within", repo0(func(r *Repository) { r.Keep.Within = "1d1d" })},
		{"repositories[0].keep.within", repo0(func(r *Repository) { r.Keep.Within = "5" })},
		{"repositories[0].keep.within", repo0(func(r *Repository) { r.Keep.Within = "2000000y" })},
		{"restore_root", func(p *Policy) { p.RestoreRoot = "/" }},
		{"restore_root", func(p *Policy) { p.RestoreRoot = "var/restore" }},
		{"restore_root", func(p *Policy) { p.RestoreRoot = "/var/../restore" }},
		{"restore_root", func(p *Policy) { p.RestoreRoot = "/var/restore/" }},
		{"escrow_public_key", func(p *Policy) { p.EscrowPublicKey = make([]byte, 31) }},
	}
	for _, c := range cases {
		p := validPolicy()
		c.edit(p)
		err := p.Validate()
		if !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: Validate = %v, want ErrInvalid", c.field, err)
			continue
		}
		if !strings.Contains(err.Error(), ": "+c.field+": ") {
			t.Errorf("%s: error does not name the field: %v", c.field, err)
		}
		if _, err := Sign(testKey, p); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: Sign = %v, want ErrInvalid", c.field, err)
		}
	}
	p := validPolicy()
	p.Version = 2
	if err := p.Validate(); !errors.Is(err, ErrVersion) {
		t.Errorf("version 2: %v", err)
	}
}

// TestScheduleErrorWrapped: a bad schedule's error is also schedule's own.
func TestScheduleErrorWrapped(t *testing.T) {
	t.Parallel()
	p := validPolicy()
	p.Repositories[1].Schedule = "every 5s"
	err := p.Validate()
	if !errors.Is(err, schedule.ErrInvalid) || !strings.Contains(err.Error(), "below the minimum") {
		t.Fatalf("Validate = %v", err)
	}
}

func TestAcceptedLocationsAndSubsets(t *testing.T) {
	t.Parallel()
	for _, loc := range []string{"", "coffer://h/r", "coffer://h:1/r_2", "coffer://[::1]:8443/x", "s3:https://s3.example/bucket/prefix", "local:/srv/repo", "/srv/repo"} {
		if err := validateLocation(loc); err != nil {
			t.Errorf("%q: %v", loc, err)
		}
	}
	for _, s := range []string{"", "0.5%", "100%", "1/1", "5/256", "500M", "2GiB"} {
		if err := validateSubset(s); err != nil {
			t.Errorf("%q: %v", s, err)
		}
	}
	for _, s := range []string{"1y", "2m15d", "36h", "1y2m3d4h", "1000000d"} {
		if err := validateWithin(s); err != nil {
			t.Errorf("%q: %v", s, err)
		}
	}
}

func TestDuration(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		in   string
		d    time.Duration
		text string
	}{{"90s", 90 * time.Second, "1m30s"}, {"0s", 0, "0s"}, {"1h", time.Hour, "1h"}, {"168h", 7 * 24 * time.Hour, "168h"}, {"1h0m5s", time.Hour + 5*time.Second, "1h5s"}} {
		var d Duration
		if err := d.UnmarshalText([]byte(c.in)); err != nil || d.D() != c.d {
			t.Errorf("%q: %v, %v", c.in, d.D(), err)
			continue
		}
		out, err := d.MarshalText()
		if err != nil || string(out) != c.text {
			t.Errorf("%q: marshals as %q, %v; want %q", c.in, out, err, c.text)
		}
	}
	for _, in := range []string{"", "-1s", "+1s", "1.5s", "1d", "10", "s", "9999999999h"} {
		var d Duration
		if err := d.UnmarshalText([]byte(in)); !errors.Is(err, ErrInvalid) {
			t.Errorf("%q: accepted as %v", in, d.D())
		}
	}
	if _, err := Duration(-time.Second).MarshalText(); err == nil {
		t.Error("a negative duration marshals")
	}
	if _, err := json.Marshal(Retry{Interval: Duration(time.Millisecond)}); err == nil {
		t.Error("a fraction of a second marshals")
	}
}

func TestTiming(t *testing.T) {
	t.Parallel()
	r := validPolicy().Repositories[0]
	s, tm, err := r.Timing()
	if err != nil {
		t.Fatal(err)
	}
	if s.String() != r.Schedule || tm.Window.String() != r.Window || tm.Jitter != 10*time.Minute ||
		tm.Retry != (schedule.Retry{Interval: 5 * time.Minute, Factor: 2, Attempts: 3}) || tm.Timeout != 6*time.Hour || tm.Grace != 2*time.Hour {
		t.Fatalf("Timing = %v, %+v", s, tm)
	}
	r.Window = "bad"
	if _, _, err := r.Timing(); !errors.Is(err, schedule.ErrInvalid) {
		t.Fatalf("bad window: %v", err)
	}
}
