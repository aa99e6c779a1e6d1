package bytesize

import (
	"errors"
	"testing"
)

func TestParse(t *testing.T) {
	t.Parallel()
	cases := []struct {
		in   string
		want int64
	}{
		{"0", 0},
		{"17", 17},
		{"17B", 17},
		{"1K", 1 << 10},
		{"1k", 1 << 10},
		{"500M", 500 << 20},
		{"500MiB", 500 << 20},
		{"500 MiB", 500 << 20},
		{"10GiB", 10 << 30},
		{"10G", 10 << 30},
		{"2T", 2 << 40},
		{"1kB", 1000},
		{"1MB", 1000 * 1000},
		{"1.5GiB", 3 << 29},
		{"  8M  ", 8 << 20},
	}
	for _, c := range cases {
		got, err := Parse(c.in)
		if err != nil || got != c.want {
			t.Errorf("Parse(%q) = %d, %v; want %d", c.in, got, err, c.want)
		}
	}
}

func TestParseRefuses(t *testing.T) {
	t.Parallel()
	for _, in := range []string{"", "M", "-1", "-5M", "12X", "1.2.3M", "10 parsecs", "99999999999999999999T"} {
		if n, err := Parse(in); !errors.Is(err, ErrSyntax) {
			t.Errorf("Parse(%q) = %d, %v; want ErrSyntax", in, n, err)
		}
	}
}

func TestParseRate(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]int64{"20MiB/s": 20 << 20, "5M/s": 5 << 20, "1000": 1000, "1kB/s": 1000} {
		got, err := ParseRate(in)
		if err != nil || got != want {
			t.Errorf("ParseRate(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"0/s", "fast", "/s"} {
		if _, err := ParseRate(in); !errors.Is(err, ErrSyntax) {
			t.Errorf("ParseRate(%q): %v, want ErrSyntax", in, err)
		}
	}
}

func TestFormat(t *testing.T) {
	t.Parallel()
	for n, want := range map[int64]string{0: "0 B", 1536: "1.5 KiB", 10 << 30: "10 GiB", -2048: "-2.0 KiB"} {
		if got := Format(n); got != want {
			t.Errorf("Format(%d) = %q, want %q", n, got, want)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"500M", "1.5GiB", "1kB", "", "-1", "1e9"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := Parse(s)
		if err == nil && n < 0 {
			t.Fatalf("Parse(%q) = %d, negative", s, n)
		}
	})
}
