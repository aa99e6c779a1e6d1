package s3

import (
	"errors"
	"strings"
	"testing"
)

func TestParseLocation(t *testing.T) {
	t.Parallel()
	good := []struct {
		in   string
		want Location
		out  string // String(); "" means "s3:" + in
	}{
		{"https://s3.example.com/bucket", Location{"s3.example.com", true, "bucket", ""}, ""},
		{"http://127.0.0.1:9000/b-1/a/b.c/d_e", Location{"127.0.0.1:9000", false, "b-1", "a/b.c/d_e"}, ""},
		{"https://[::1]:8443/bucket.x/p", Location{"[::1]:8443", true, "bucket.x", "p"}, ""},
		{"https://h/bucket/prefix/", Location{"h", true, "bucket", "prefix"}, "s3:https://h/bucket/prefix"},
		{"s3.amazonaws.com/bucket/p", Location{"s3.amazonaws.com", true, "bucket", "p"}, "s3:https://s3.amazonaws.com/bucket/p"},
		{"https://Host-1.example:65535/abc", Location{"Host-1.example:65535", true, "abc", ""}, ""},
	}
	for _, g := range good {
		got, err := ParseLocation(g.in)
		if err != nil || got != g.want {
			t.Errorf("ParseLocation(%q) = %+v, %v; want %+v", g.in, got, err, g.want)
			continue
		}
		want := g.out
		if want == "" {
			want = "s3:" + g.in
		}
		if s := got.String(); s != want {
			t.Errorf("ParseLocation(%q).String() = %q, want %q", g.in, s, want)
		}
	}
	for _, bad := range []string{
		"", "https://", "https://host", "https://host/", "https:///bucket", "ftp://host/bucket",
		"https://host/Bucket", "https://host/b", "https://host/bucket_x", "https://host/-bucket",
		"https://host:0/bucket", "https://host:65536/bucket", "https://host:/bucket", "https://host:x/bucket", "https://host:080/bucket",
		"https://ho_st/bucket", "https://-h/bucket", "https://::1/bucket", "https://[zz]/bucket",
		"https://host/bucket//p", "https://host/bucket/../p", "https://host/bucket/./p", "https://host/bucket/a b",
		"https://host/bucket/p%2f", "https://host/bucket/p?x=1", "https://host/bucket#f",
		"https://host/bucket/" + strings.Repeat("p", maxPrefix+1),
	} {
		if got, err := ParseLocation(bad); !errors.Is(err, ErrLocation) {
			t.Errorf("ParseLocation(%q) = %+v, %v; want ErrLocation", bad, got, err)
		}
	}
}

// TestParseLocationHidesCredentials checks that a location with user
// information is refused without repeating it.
func TestParseLocationHidesCredentials(t *testing.T) {
	t.Parallel()
	for _, in := range []string{"https://AKIDEXAMPLE:hunter2secret@host/bucket", "http://hunter2secret@host/bucket", "hunter2secret@host/bucket"} {
		_, err := ParseLocation(in)
		if !errors.Is(err, ErrLocation) {
			t.Errorf("ParseLocation(%q): %v, want ErrLocation", in, err)
		} else if strings.Contains(err.Error(), "hunter2secret") {
			t.Errorf("error repeats the secret: %v", err)
		}
	}
}

func TestParseBucketLookup(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]BucketLookup{"": LookupDefault, "path": LookupPath, "dns": LookupDNS, "virtual-host": LookupDNS, "auto": LookupAuto} {
		if got, err := ParseBucketLookup(in); err != nil || got != want {
			t.Errorf("ParseBucketLookup(%q) = %q, %v", in, got, err)
		}
	}
	if _, err := ParseBucketLookup("Path"); err == nil {
		t.Error("ParseBucketLookup accepted Path")
	}
}

func FuzzParseLocation(f *testing.F) {
	for _, s := range []string{"https://h/b", "http://127.0.0.1:9/bb/p/q", "https://[::1]:1/bbb", "h/bucket/", "https://a:b@h/bucket", "https://h/bucket/../x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		loc, err := ParseLocation(s)
		if err != nil {
			if !errors.Is(err, ErrLocation) {
				t.Fatalf("error %v does not wrap ErrLocation", err)
			}
			if i := strings.IndexByte(s, '@'); i > 0 && strings.Contains(err.Error(), s[:i]) && len(s[:i]) > 8 {
				t.Fatalf("error %q repeats what precedes '@'", err)
			}
			return
		}
		str := loc.String()
		if strings.ContainsAny(str, "@?# \\") {
			t.Fatalf("String() = %q", str)
		}
		again, err := ParseLocation(strings.TrimPrefix(str, "s3:"))
		if err != nil || again != loc {
			t.Fatalf("ParseLocation(%q) = %+v; its String %q parses to %+v, %v", s, loc, str, again, err)
		}
		if strings.HasPrefix(loc.Prefix, "/") || strings.HasSuffix(loc.Prefix, "/") || strings.Contains("/"+loc.Prefix+"/", "/../") {
			t.Fatalf("prefix %q", loc.Prefix)
		}
	})
}
