package audit

import (
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/coffer-backup/coffer/internal/auditlog"
	"github.com/coffer-backup/coffer/internal/serverdb"
)

func TestParseSince(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	good := map[string]time.Time{
		"2026-12-05T10:00:00Z":      time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC),
		"2026-12-05T10:00:00+01:00": time.Date(2026, 12, 5, 9, 0, 0, 0, time.UTC),
		"2026-12-05":                time.Date(2026, 12, 5, 0, 0, 0, 0, time.UTC),
		"36h":                       now.Add(-36 * time.Hour),
		"90m":                       now.Add(-90 * time.Minute),
		"7d":                        now.AddDate(0, 0, -7),
		"0d":                        now,
	}
	for in, want := range good {
		got, err := ParseSince(in, now)
		if err != nil || !got.Equal(want) {
			t.Errorf("ParseSince(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "yesterday", "-5h", "5", "d", "-1d", "99999d", "2026-13-01", "1w"} {
		if _, err := ParseSince(bad, now); err == nil || !strings.Contains(err.Error(), "RFC 3339") {
			t.Errorf("ParseSince(%q): %v; want an error naming the accepted forms", bad, err)
		}
	}
}

func FuzzParseSince(f *testing.F) {
	for _, s := range []string{"2026-12-05T10:00:00Z", "2026-12-05", "36h", "7d", "", "-1h", "1e9h"} {
		f.Add(s)
	}
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, s string) {
		got, err := ParseSince(s, now)
		if err == nil && got.IsZero() && s != "0001-01-01" && !strings.HasPrefix(s, "0001-01-01T00:00:00") {
			t.Fatalf("ParseSince(%q) accepted a zero time", s)
		}
	})
}

func TestParseSyslogAddr(t *testing.T) {
	t.Parallel()
	good := map[string][2]string{
		"udp:127.0.0.1:514":  {"udp", "127.0.0.1:514"},
		"tcp:[::1]:601":      {"tcp", "[::1]:601"},
		"unixgram:/dev/log":  {"unixgram", "/dev/log"},
		"unix:/run/log.sock": {"unix", "/run/log.sock"},
	}
	for in, want := range good {
		n, a, err := ParseSyslogAddr(in)
		if err != nil || n != want[0] || a != want[1] {
			t.Errorf("ParseSyslogAddr(%q) = %q %q %v", in, n, a, err)
		}
	}
	for _, bad := range []string{"", "udp", "udp:", "udp:host", "unixgram:dev/log", "http:x:1", "/dev/log"} {
		if _, _, err := ParseSyslogAddr(bad); err == nil {
			t.Errorf("ParseSyslogAddr(%q) accepted", bad)
		}
	}
}

func FuzzParseSyslogAddr(f *testing.F) {
	for _, s := range []string{"udp:127.0.0.1:514", "unixgram:/dev/log", "tcp:", ":", "x:y"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, a, err := ParseSyslogAddr(s)
		if err != nil {
			return
		}
		if n+":"+a != s || a == "" {
			t.Fatalf("ParseSyslogAddr(%q) = %q, %q", s, n, a)
		}
		if _, err := auditlog.NewSyslog(n, a, auditlog.SyslogOptions{}); err != nil {
			t.Fatalf("ParseSyslogAddr(%q) accepted what NewSyslog refuses: %v", s, err)
		}
	})
}

// Every event becomes an entry the log accepts, whatever its text.
func FuzzEventEntry(f *testing.F) {
	f.Add("web1", "main", "data/ab", serverdb.ActionDelete, "size=1")
	f.Add("we\xffb", "", "", serverdb.ActionEnrollRefused, strings.Repeat("\x00", 2000))
	f.Add("", "", "", "", "")
	f.Add("", "", "", auditlog.ActionCheckpoint, "")
	f.Fuzz(func(t *testing.T, client, repo, object, action, detail string) {
		e := EventEntry(serverdb.Event{ID: 7, Time: time.Unix(1, 0), Client: client, Repo: repo, Object: object, Action: action, Detail: detail})
		e.Seq, e.Time = 1, time.Unix(2, 0).UTC()
		e.Hash = auditlog.ComputeHash(e)
		line, err := auditlog.EncodeLine(e)
		if err != nil {
			t.Fatalf("EncodeLine: %v", err)
		}
		if _, err := auditlog.DecodeLine(line); err != nil {
			t.Fatalf("DecodeLine of an event's entry: %v", err)
		}
		if e.Action == auditlog.ActionCheckpoint || e.Action == auditlog.ActionRepaired || !utf8.ValidString(e.Target) {
			t.Fatalf("entry %+v", e)
		}
	})
}

func TestEventEntryActors(t *testing.T) {
	t.Parallel()
	cases := []struct {
		action  string
		actor   auditlog.Actor
		outcome string
	}{
		{serverdb.ActionEnroll, auditlog.Actor{Name: "web1", Role: RoleHost}, auditlog.OutcomeOK},
		{serverdb.ActionDelete, auditlog.Actor{Name: "web1", Role: RoleHost}, auditlog.OutcomeOK},
		{serverdb.ActionDeleteRefused, auditlog.Actor{Name: "web1", Role: RoleHost}, auditlog.OutcomeRefused},
		{serverdb.ActionEnrollRefused, auditlog.Actor{Name: "web1", Role: RoleHost}, auditlog.OutcomeRefused},
		{serverdb.ActionToken, auditlog.Actor{Name: ActorLocal, Role: RoleAdmin}, auditlog.OutcomeOK},
		{serverdb.ActionPolicy, auditlog.Actor{Name: ActorLocal, Role: RoleAdmin}, auditlog.OutcomeOK},
		{serverdb.ActionAlert, auditlog.Actor{Name: ActorServer, Role: auditlog.RoleServer}, auditlog.OutcomeFailed},
		{serverdb.ActionSelfScan, auditlog.Actor{Name: ActorServer, Role: auditlog.RoleServer}, auditlog.OutcomeOK},
		{serverdb.ActionFleetRefused, auditlog.Actor{Name: ActorServer, Role: auditlog.RoleServer}, auditlog.OutcomeRefused},
	}
	for _, c := range cases {
		e := EventEntry(serverdb.Event{ID: 3, Client: "web1", Repo: "main", Action: c.action, Time: time.Unix(5, 0)})
		if e.Actor != c.actor || e.Outcome != c.outcome || e.Target != "client:web1" || e.Details["repo"] != "main" || e.Details["event"] != "3" || e.Details["event_time"] != "1970-01-01T00:00:05Z" {
			t.Errorf("%s: %+v", c.action, e)
		}
	}
	if e := EventEntry(serverdb.Event{Client: serverdb.UserRevocationName("alice"), Action: serverdb.ActionUserAdd}); e.Target != "user:alice" {
		t.Errorf("a person's event has target %q, want user:alice", e.Target)
	}
}
