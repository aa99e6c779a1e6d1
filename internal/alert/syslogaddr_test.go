package alert

import (
	"errors"
	"strings"
	"testing"
)

func TestParseSyslogAddress(t *testing.T) {
	t.Parallel()
	good := map[string][2]string{
		"":                       {"unixgram", ""},
		"udp://127.0.0.1:514":    {"udp", "127.0.0.1:514"},
		"tcp://logs.example:601": {"tcp", "logs.example:601"},
		"unix:///dev/log":        {"unix", "/dev/log"},
		"unixgram:///run/log":    {"unixgram", "/run/log"},
	}
	for in, want := range good {
		n, a, err := ParseSyslogAddress(in)
		if err != nil || n != want[0] || a != want[1] {
			t.Errorf("%q: %q %q %v, want %q", in, n, a, err, want)
		}
	}
	for _, in := range []string{"127.0.0.1:514", "http://x:1", "udp://x", "udp://:514", "unix://dev/log", "tcp://h:0", "udp://h:99999", "unix:///a\nb"} {
		if _, _, err := ParseSyslogAddress(in); !errors.Is(err, ErrInvalid) {
			t.Errorf("%q: %v, want ErrInvalid", in, err)
		}
	}
}

func FuzzParseSyslogAddress(f *testing.F) {
	for _, s := range []string{"", "udp://127.0.0.1:514", "unix:///dev/log", "tcp://[::1]:601", "x://", "unixgram://"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, a, err := ParseSyslogAddress(s)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("%q: error %v not ErrInvalid", s, err)
			}
			return
		}
		c := Channel{Name: "s", Kind: Syslog, Syslog: &SyslogConfig{Network: n, Address: a}}
		if err := c.Validate(); err != nil {
			t.Fatalf("%q parsed to %q %q that does not validate: %v", s, n, a, err)
		}
		if s != "" && !strings.HasSuffix(s, a) {
			t.Fatalf("%q: address %q", s, a)
		}
	})
}
