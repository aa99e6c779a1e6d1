package storage

import (
	"context"
	"errors"
	"strings"
	"testing"
)

func TestParseLocation(t *testing.T) {
	t.Parallel()
	good := []struct{ in, scheme, rest string }{
		{"/srv/backup", SchemeLocal, "/srv/backup"},
		{"/srv/a:b", SchemeLocal, "/srv/a:b"},
		{"./a:b", SchemeLocal, "./a:b"},
		{"../repo", SchemeLocal, "../repo"},
		{".", SchemeLocal, "."},
		{"repo", SchemeLocal, "repo"},
		{"backups/2026", SchemeLocal, "backups/2026"},
		{"dir/a:b", SchemeLocal, "dir/a:b"},
		{"my repo:x", SchemeLocal, "my repo:x"},
		{"1abc:x", SchemeLocal, "1abc:x"},
		{":x", SchemeLocal, ":x"},
		{"local:/srv/backup", SchemeLocal, "/srv/backup"},
		{"local:rel:with:colons", SchemeLocal, "rel:with:colons"},
		{"coffer://host:7443/main", "coffer", "//host:7443/main"},
		{"s3:https://s3.example.com/bucket", "s3", "https://s3.example.com/bucket"},
		{"sftp:user@host:/srv", "sftp", "user@host:/srv"},
		{"foo://", "foo", "//"},
		{"a+b.c-d:x", "a+b.c-d", "x"},
		{"COFFER://h/r", "COFFER", "//h/r"},
	}
	for _, g := range good {
		loc, err := ParseLocation(g.in)
		if err != nil || loc.Scheme != g.scheme || loc.Rest != g.rest || loc.Raw != g.in {
			t.Errorf("ParseLocation(%q) = %+v, %v; want scheme %q, rest %q", g.in, loc, err, g.scheme, g.rest)
		}
	}
	for _, bad := range []string{"", "local:", "s3:", "a\x00b", "/" + strings.Repeat("x", maxLocation)} {
		if loc, err := ParseLocation(bad); !errors.Is(err, ErrLocation) {
			t.Errorf("ParseLocation(%q) = %+v, %v; want ErrLocation", bad, loc, err)
		}
	}
}

func FuzzParseLocation(f *testing.F) {
	for _, s := range []string{"/a", "./a:b", "local:x", "coffer://h:1/r", "s3:https://x/y", "a:", "", ":", "a\x00:b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		loc, err := ParseLocation(s)
		if err != nil {
			if !errors.Is(err, ErrLocation) {
				t.Fatalf("error %v does not wrap ErrLocation", err)
			}
			return
		}
		if loc.Raw != s || loc.Rest == "" || !validScheme(loc.Scheme) {
			t.Fatalf("ParseLocation(%q) = %+v", s, loc)
		}
		switch {
		case loc.Rest == s:
			if loc.Scheme != SchemeLocal {
				t.Fatalf("whole location %q as rest of scheme %q", s, loc.Scheme)
			}
		case s != loc.Scheme+":"+loc.Rest:
			t.Fatalf("ParseLocation(%q) = %+v: scheme and rest do not make the location", s, loc)
		}
		if (s[0] == '/' || s[0] == '.') && (loc.Scheme != SchemeLocal || loc.Rest != s) {
			t.Fatalf("path %q parsed as %+v", s, loc)
		}
	})
}

// nopStorage is a Storage that is never called.
type nopStorage struct{ Storage }

func TestRegistry(t *testing.T) {
	t.Parallel()
	var r Registry
	var got Location
	var gotOpts OpenOptions
	r.Register("local", func(_ context.Context, loc Location, opts OpenOptions) (Storage, error) {
		got, gotOpts = loc, opts
		return nopStorage{}, nil
	})
	r.Register("x-y", func(context.Context, Location, OpenOptions) (Storage, error) {
		return nil, errors.New("x-y is down")
	})
	if s := strings.Join(r.Schemes(), ","); s != "local,x-y" {
		t.Errorf("Schemes = %s", s)
	}
	ctx := context.Background()
	if _, err := r.Open(ctx, "./a:b", OpenOptions{Create: true}); err != nil {
		t.Fatal(err)
	}
	if got.Scheme != "local" || got.Rest != "./a:b" || !gotOpts.Create {
		t.Errorf("factory got %+v, %+v", got, gotOpts)
	}
	if _, err := r.Open(ctx, "x-y:z", OpenOptions{}); err == nil || err.Error() != "x-y is down" {
		t.Errorf("factory error not passed on: %v", err)
	}
	for _, loc := range []string{"s3:https://s3.example.com/b", "sftp:host:/srv", "foo://bar", "backups:2026"} {
		_, err := r.Open(ctx, loc, OpenOptions{})
		if !errors.Is(err, ErrUnknownScheme) {
			t.Fatalf("Open(%q): %v, want ErrUnknownScheme", loc, err)
		}
		scheme, _, _ := strings.Cut(loc, ":")
		for _, want := range []string{`"` + scheme + `"`, loc, "known: local, x-y", "local:PATH or ./PATH"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("Open(%q): %q does not say %q", loc, err, want)
			}
		}
	}
	if _, err := r.Open(ctx, "", OpenOptions{}); !errors.Is(err, ErrLocation) {
		t.Errorf("empty location: %v", err)
	}
}

func TestRegisterPanics(t *testing.T) {
	t.Parallel()
	f := func(context.Context, Location, OpenOptions) (Storage, error) { return nil, nil }
	cases := map[string]func(r *Registry){
		"duplicate":   func(r *Registry) { r.Register("a", f); r.Register("a", f) },
		"bad scheme":  func(r *Registry) { r.Register("a/b", f) },
		"empty":       func(r *Registry) { r.Register("", f) },
		"nil factory": func(r *Registry) { r.Register("a", nil) },
	}
	for name, c := range cases {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: Register did not panic", name)
				}
			}()
			c(new(Registry))
		}()
	}
}

type propertied struct {
	nopStorage
	p Properties
}

func (p propertied) Properties() Properties { return p.p }

func TestPropertiesOf(t *testing.T) {
	t.Parallel()
	if p := PropertiesOf(nopStorage{}); p != (Properties{}) {
		t.Errorf("backend without Properties: %+v, want zero", p)
	}
	want := Properties{Remote: true, AppendOnly: true}
	if p := PropertiesOf(propertied{p: want}); p != want {
		t.Errorf("PropertiesOf = %+v, want %+v", p, want)
	}
}
