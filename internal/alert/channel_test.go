package alert_test

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/coffer-backup/coffer/internal/alert"
)

const goodEmail = `{"name":"ops","kind":"email","events":["backup-missed","backup-failed"],"groups":["prod"],"email":{"smtp":"mail.example.org:587","security":"starttls","user":"u","password_file":"/etc/coffer/smtp.pass","from":"coffer@example.org","to":["ops@example.org"]}}`

func TestParseChannel(t *testing.T) {
	t.Parallel()
	c, err := alert.ParseChannel([]byte(goodEmail))
	if err != nil {
		t.Fatal(err)
	}
	if c.Name != "ops" || c.Email.Security != alert.SMTPStartTLS || len(c.Events) != 2 {
		t.Fatalf("%+v", c)
	}
	enc, err := c.Encode()
	if err != nil || string(enc) != goodEmail {
		t.Fatalf("Encode = %s, %v", enc, err)
	}
	for _, good := range []string{
		`{"name":"hook","kind":"webhook","webhook":{"url":"https://hooks.example.org/x?y=1","secret_file":"/s"}}`,
		`{"name":"log","kind":"syslog","syslog":{}}`,
		`{"name":"log2","kind":"syslog","digest_at":"23:59","syslog":{"network":"tcp","address":"[::1]:514","facility":"local7","app_name":"coffer-prod"}}`,
		`{"name":"m","kind":"email","email":{"smtp":"mail.example.org","security":"tls","from":"A <a@b.c>","to":["x@y.z"]}}`,
	} {
		if _, err := alert.ParseChannel([]byte(good)); err != nil {
			t.Errorf("%s: %v", good, err)
		}
	}
	for bad, want := range map[string]string{
		`{"name":"Ops","kind":"syslog","syslog":{}}`:                                                         "name",
		`{"name":"x","kind":"sms","syslog":{}}`:                                                              "kind",
		`{"name":"x","kind":"email","syslog":{}}`:                                                            "settings",
		`{"name":"x","kind":"syslog","syslog":{},"webhook":{}}`:                                              "settings",
		`{"name":"x","kind":"syslog","syslog":{},"extra":1}`:                                                 "unknown field",
		`{"name":"x","kind":"syslog","syslog":{}} {}`:                                                        "after the object",
		`{"name":"x","kind":"syslog","events":["backup-lost"],"syslog":{}}`:                                  "unknown event",
		`{"name":"x","kind":"syslog","events":["prune-done","prune-done"],"syslog":{}}`:                      "twice",
		`{"name":"x","kind":"syslog","clients":["A"],"syslog":{}}`:                                           "clients[0]",
		`{"name":"x","kind":"syslog","digest_at":"24:00","syslog":{}}`:                                       "digest_at",
		`{"name":"x","kind":"syslog","syslog":{"network":"udp"}}`:                                            "HOST:PORT",
		`{"name":"x","kind":"syslog","syslog":{"facility":"kern"}}`:                                          "facility",
		`{"name":"x","kind":"syslog","syslog":{"address":"dev/log"}}`:                                        "absolute",
		`{"name":"x","kind":"webhook","webhook":{"url":"ftp://h/x","secret_file":"/s"}}`:                     "scheme",
		`{"name":"x","kind":"webhook","webhook":{"url":"https://u:p@h/x","secret_file":"/s"}}`:               "credentials",
		`{"name":"x","kind":"webhook","webhook":{"url":"https://h/x"}}`:                                      "secret_file",
		`{"name":"x","kind":"email","email":{"smtp":"h:0","from":"a@b.c","to":["x@y.z"]}}`:                   "HOST:PORT",
		`{"name":"x","kind":"email","email":{"smtp":"h:25","from":"a@b.c","to":[]}}`:                         "recipients",
		`{"name":"x","kind":"email","email":{"smtp":"h:25","from":"a@b.c\r\nBcc: e@vil","to":["x@y.z"]}}`:    "control",
		`{"name":"x","kind":"email","email":{"smtp":"h:25","from":"a@b.c","to":["not an address"]}}`:         "to[0]",
		`{"name":"x","kind":"email","email":{"smtp":"h:25","user":"u","from":"a@b.c","to":["x@y.z"]}}`:       "go together",
		`{"name":"x","kind":"email","email":{"smtp":"h:25","security":"ssl","from":"a@b.c","to":["x@y.z"]}}`: "security",
	} {
		_, err := alert.ParseChannel([]byte(bad))
		if !errors.Is(err, alert.ErrInvalid) || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want ErrInvalid naming %q", bad, err, want)
		}
	}
}

func TestMatches(t *testing.T) {
	t.Parallel()
	server := alert.Event{Kind: alert.CertExpiring, Time: time.Now()}
	other := alert.Event{Kind: alert.BackupMissed, Client: "db1", Groups: []string{"db"}, Time: time.Now()}
	for _, c := range []struct {
		ch   alert.Channel
		e    alert.Event
		want bool
	}{
		{alert.Channel{}, missed, true},
		{alert.Channel{}, server, true},
		{alert.Channel{Events: []alert.Kind{alert.BackupFailed}}, missed, false},
		{alert.Channel{Events: []alert.Kind{alert.BackupMissed}}, missed, true},
		{alert.Channel{Clients: []string{"web1"}}, missed, true},
		{alert.Channel{Clients: []string{"web1"}}, other, false},
		{alert.Channel{Groups: []string{"prod"}}, missed, true},
		{alert.Channel{Groups: []string{"prod"}}, other, false},
		{alert.Channel{Groups: []string{"prod"}}, server, false},
		{alert.Channel{Clients: []string{"db1"}, Groups: []string{"prod"}}, other, true},
		{alert.Channel{Events: []alert.Kind{alert.PruneDone}, Clients: []string{"zzz"}}, alert.Event{Kind: alert.Test}, true},
	} {
		if got := c.ch.Matches(c.e); got != c.want {
			t.Errorf("%+v matches %+v = %v", c.ch, c.e, got)
		}
	}
}

// Whatever bytes are stored, ParseChannel refuses them with ErrInvalid or
// returns a valid channel that encodes and parses back to itself.
func FuzzParseChannel(f *testing.F) {
	f.Add([]byte(goodEmail))
	f.Add([]byte(`{"name":"hook","kind":"webhook","webhook":{"url":"https://hooks.example.org/x","secret_file":"/s","ca_file":"/ca"}}`))
	f.Add([]byte(`{"name":"log","kind":"syslog","digest_at":"08:00","clients":["a.b"],"syslog":{"network":"udp","address":"h:514"}}`))
	f.Add([]byte(`{"name":"x","kind":"email","email":{"smtp":"[::1]:25","from":"\"A\" <a@b.c>","to":["x@y.z"]}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := alert.ParseChannel(data)
		if err != nil {
			if !errors.Is(err, alert.ErrInvalid) {
				t.Fatalf("error without ErrInvalid: %v", err)
			}
			return
		}
		enc, err := c.Encode()
		if err != nil {
			t.Fatalf("a parsed channel does not encode: %v", err)
		}
		c2, err := alert.ParseChannel(enc)
		if err != nil {
			t.Fatalf("an encoded channel does not parse: %v\n%s", err, enc)
		}
		if !reflect.DeepEqual(c, c2) {
			t.Fatalf("round trip changed the channel:\n%+v\n%+v", c, c2)
		}
		_ = c.Matches(missed)
	})
}

func TestEventValidateNormalize(t *testing.T) {
	t.Parallel()
	if err := (alert.Event{Kind: "backup-lost", Time: time.Now()}).Validate(); !errors.Is(err, alert.ErrInvalid) || !strings.Contains(err.Error(), "backup-missed") {
		t.Fatalf("unknown kind: %v", err)
	}
	if err := (alert.Event{Kind: alert.BackupMissed}).Validate(); !errors.Is(err, alert.ErrInvalid) {
		t.Fatalf("no time: %v", err)
	}
	e := alert.Event{Kind: alert.BackupFailed, Time: time.Now(), Summary: strings.Repeat("é", 2000) + "\xff", Details: map[string]string{}}
	for i := 0; i < 40; i++ {
		e.Details[string(rune('A'+i))+strings.Repeat("k", 100)] = "v"
	}
	n := e.Normalize()
	if len(n.Summary) > alert.MaxSummary || !strings.HasSuffix(n.Summary, "…") || !strings.HasPrefix(n.Summary, "éé") {
		t.Fatalf("summary of %d bytes: %q", len(n.Summary), n.Summary[len(n.Summary)-8:])
	}
	if len(n.Details) != alert.MaxDetails+1 || !strings.Contains(n.Details["truncated"], "8 more") {
		t.Fatalf("%d details, truncated=%q", len(n.Details), n.Details["truncated"])
	}
	for k := range n.Details {
		if len(k) > alert.MaxDetailKey {
			t.Fatalf("key of %d bytes", len(k))
		}
	}
}

// Host-controlled strings cannot break out of a subject's line or a
// body's field: control characters, newlines and bidi overrides are
// escaped.
func TestRenderEscapes(t *testing.T) {
	t.Parallel()
	e := missed
	e.Client = "web1\r\nBcc: evil@example.org"
	e.Summary = "disk full\n\nfake: line\u202e"
	s := alert.Subject([]alert.Event{e})
	if !strings.Contains(s, "missed") || !strings.Contains(s, "web1") || strings.ContainsAny(s, "\r\n\u202e") {
		t.Fatalf("subject %q", s)
	}
	body := alert.Body([]alert.Event{e})
	if strings.Contains(body, "\nBcc:") || strings.Contains(body, "\nfake:") || strings.Contains(body, "\u202e") {
		t.Fatalf("body:\n%s", body)
	}
	if !strings.Contains(body, `disk full\n\nfake: line\342\200\256`) {
		t.Fatalf("body does not show the escaped summary:\n%s", body)
	}
	digest := alert.Subject([]alert.Event{missed, missed, {Kind: alert.BackupFailed, Time: time.Now()}})
	if digest != "coffer: digest of 3 events: 1 backup failed, 2 backup missed" {
		t.Fatalf("digest subject %q", digest)
	}
}
