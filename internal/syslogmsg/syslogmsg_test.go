package syslogmsg

import (
	"strings"
	"testing"
	"time"
)

func TestHeader(t *testing.T) {
	at := time.Date(2026, 12, 6, 4, 5, 6, 7000, time.FixedZone("x", 3600))
	got := Header(4, 5, at, "host one", "", "42", strings.Repeat("m", 40))
	want := "<37>1 2026-12-06T03:05:06.000007Z hostone - 42 " + strings.Repeat("m", 32) + " - \ufeff"
	if got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
	if h := Header(0, 0, at, "\x00\n\xff", "app", "", ""); !strings.HasPrefix(h, "<0>1 2026-12-06T03:05:06.000007Z - app - - - ") {
		t.Errorf("control characters and empty fields: %q", h)
	}
}

// Moved from auditlog's syslog tests with the function.
func TestField(t *testing.T) {
	if got := field(strings.Repeat("é a", 40), 32); got != strings.Repeat("a", 32) {
		t.Fatalf("field = %q", got)
	}
	if got := field(" ", 5); got != "-" {
		t.Fatalf("field of nothing printable = %q", got)
	}
}

func FuzzHeader(f *testing.F) {
	f.Add("host", "app", "1", "msg")
	f.Fuzz(func(t *testing.T, host, app, proc, msg string) {
		h := Header(1, 5, time.Unix(0, 0), host, app, proc, msg)
		fields := strings.Split(strings.TrimSuffix(h, " - \ufeff"), " ")
		if len(fields) != 6 {
			t.Fatalf("%q: %d fields", h, len(fields))
		}
		for _, f := range fields[2:] {
			if f == "" {
				t.Fatalf("%q: empty field", h)
			}
		}
	})
}
