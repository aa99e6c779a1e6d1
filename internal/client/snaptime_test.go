package client

import (
	"errors"
	"testing"
	"time"
)

func TestParseSnapshotTime(t *testing.T) {
	t.Parallel()
	loc := time.FixedZone("X", 3600)
	for _, c := range []struct {
		in   string
		want time.Time
	}{
		{"2001-02-03 04:05:06", time.Date(2001, 2, 3, 4, 5, 6, 0, loc)},
		{"2001-02-03 04:05", time.Date(2001, 2, 3, 4, 5, 0, 0, loc)},
		{"2001-02-03", time.Date(2001, 2, 3, 0, 0, 0, 0, loc)},
		{"2001-02-03T04:05:06Z", time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)},
	} {
		got, err := ParseSnapshotTime(c.in, loc)
		if err != nil || !got.Equal(c.want) {
			t.Errorf("%q: %v, %v; want %v", c.in, got, err, c.want)
		}
	}
	for _, bad := range []string{"", "yesterday", "2001-13-01", "2001-02-03 25:00:00", "2001-02-03T04:05:06"} {
		if _, err := ParseSnapshotTime(bad, loc); !errors.Is(err, ErrInvalidTime) {
			t.Errorf("%q: %v, want ErrInvalidTime", bad, err)
		}
	}
}

func FuzzParseSnapshotTime(f *testing.F) {
	for _, s := range []string{"2001-02-03 04:05:06", "2001-02-03", "2001-02-03T04:05:06.5+02:00", "x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := ParseSnapshotTime(s, time.UTC)
		if err != nil {
			if !errors.Is(err, ErrInvalidTime) {
				t.Fatalf("%q: %v", s, err)
			}
			return
		}
		if got.IsZero() && s != "0001-01-01" && s != "0001-01-01 00:00" && s != "0001-01-01 00:00:00" {
			t.Logf("%q parses to the zero time", s)
		}
	})
}
