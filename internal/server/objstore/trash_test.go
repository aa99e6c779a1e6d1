package objstore

import (
	"strings"
	"testing"
)

// parseTrashPath reads only <client>/<repo>/<nanos>/<object path>,
// and what it accepts names a valid object of that client and repository.
func FuzzParseTrashPath(f *testing.F) {
	for _, s := range []string{"alice/r/1700000000000000000/snapshots/s1", "alice/r/1/data/ab/ab01", "alice/r/1/config",
		"alice/r/x/config", "../r/1/config", "alice/r/1/data/cd/ab01", "alice/r/config"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		e, ok := parseTrashPath(p)
		if !ok {
			return
		}
		if !strings.HasPrefix(p, e.Client+"/"+e.Repo+"/") || e.Deleted.IsZero() {
			t.Fatalf("%q parsed to %+v", p, e)
		}
		if got := LayoutPath(e.handle); !strings.HasSuffix(p, "/"+got) {
			t.Fatalf("%q: object path %q does not round-trip", p, got)
		}
	})
}

func TestParseTrashPath(t *testing.T) {
	for p, want := range map[string]string{
		"alice/r/1700000000000000000/snapshots/s1": "snapshots/s1",
		"alice/r/1/data/ab/ab01":                   "data/ab01",
		"alice/r/1/config":                         "config",
		"alice/r/x/config":                         "",
		"alice/r/1/data/cd/ab01":                   "",
		"alice/r/0/config":                         "",
		"alice/r/config":                           "",
		"alice/r/1/.repository":                    "",
	} {
		e, ok := parseTrashPath(p)
		if ok != (want != "") || ok && e.Object != want {
			t.Errorf("%q: %+v %v, want %q", p, e, ok, want)
		}
	}
}
