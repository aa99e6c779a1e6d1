package termesc

import (
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestName(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"/etc/passwd":                 "/etc/passwd",
		"My Documents/ünïcode 日本.txt": "My Documents/ünïcode 日本.txt",
		"evil\x1b[2J\x1b]0;pwned\a":   `evil\033[2J\033]0;pwned\a`,
		"fake\nroot  0 /etc/shadow":   `fake\nroot  0 /etc/shadow`,
		"tab\there\rcr\b\f\v":         `tab\there\rcr\b\f\v`,
		`back\slash`:                  `back\\slash`,
		"bad\xff\xfeutf8":             `bad\377\376utf8`,
		"del\x7f":                     `del\177`,
		"nul\x00":                     `nul\000`,
		"rtl\u202egnp.exe":            `rtl\342\200\256gnp.exe`,
		"c1\u009b31m":                 `c1\302\23331m`,
		"":                            "",
	} {
		if got := Name(in); got != want {
			t.Errorf("Name(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestNamePrintableDoesNotAllocate(t *testing.T) {
	s := "/home/user/a file with spaces/and-more.txt"
	if n := testing.AllocsPerRun(100, func() { _ = Name(s) }); n != 0 {
		t.Errorf("%v allocations for a printable name", n)
	}
}

// unescape reverses Name, to show that escaped names stay exact.
func unescape(s string) (string, bool) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' {
			b.WriteByte(s[i])
			continue
		}
		if i+1 >= len(s) {
			return "", false
		}
		i++
		if c := strings.IndexByte(`abtnvfr\`, s[i]); c >= 0 {
			b.WriteByte("\a\b\t\n\v\f\r\\"[c])
			continue
		}
		if i+3 > len(s) {
			return "", false
		}
		v, err := strconv.ParseUint(s[i:i+3], 8, 8)
		if err != nil {
			return "", false
		}
		b.WriteByte(byte(v))
		i += 2
	}
	return b.String(), true
}

func FuzzName(f *testing.F) {
	for _, s := range []string{"plain", "a\x1b[31mb", "\xff\\\n", "\u202e", "日本\u0085"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		e := Name(s)
		for _, r := range e {
			if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == utf8.RuneError && !strings.ContainsRune(s, utf8.RuneError) {
				t.Fatalf("Name(%q) = %q keeps a control character %U", s, e, r)
			}
		}
		if !utf8.ValidString(e) {
			t.Fatalf("Name(%q) = %q is not valid UTF-8", s, e)
		}
		back, ok := unescape(e)
		if !ok || back != s {
			t.Fatalf("Name(%q) = %q reads back as %q", s, e, back)
		}
	})
}
