package auditlog

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"strings"
	"testing"
	"time"
)

// TestComputeHashMatchesSpec builds the canonical encoding by hand, byte for
// byte as docs/fleet.md writes it, and checks ComputeHash agrees.
func TestComputeHashMatchesSpec(t *testing.T) {
	t.Parallel()
	var prev Hash
	for i := range prev {
		prev[i] = byte(i)
	}
	e := Entry{
		Seq:     258,
		Time:    time.Date(2026, 12, 5, 10, 11, 12, 345600000, time.UTC),
		Actor:   Actor{Name: "alice", Role: "operator"},
		Action:  "restore",
		Target:  "client:web1",
		Outcome: OutcomeOK,
		Details: map[string]string{"snapshot": "ab12", "into": "/var/restore"},
		Prev:    prev,
	}
	var want bytes.Buffer
	want.WriteString("coffer-audit-v1\n")
	want.Write([]byte{0, 0, 0, 0, 0, 0, 1, 2})
	str := func(s string) {
		want.Write([]byte{0, 0, 0, byte(len(s))})
		want.WriteString(s)
	}
	str("2026-12-05T10:11:12.3456Z")
	for _, s := range []string{"alice", "operator", "restore", "client:web1", "ok"} {
		str(s)
	}
	want.Write([]byte{0, 0, 0, 2})
	str("into")
	str("/var/restore")
	str("snapshot")
	str("ab12")
	want.Write(prev[:])
	if got, w := ComputeHash(e), Hash(sha256.Sum256(want.Bytes())); got != w {
		t.Fatalf("ComputeHash = %s, spec gives %s", got, w)
	}
	// Every field is an input.
	base := ComputeHash(e)
	for name, mut := range map[string]func(*Entry){
		"seq":     func(e *Entry) { e.Seq++ },
		"time":    func(e *Entry) { e.Time = e.Time.Add(time.Nanosecond) },
		"name":    func(e *Entry) { e.Actor.Name = "bob" },
		"role":    func(e *Entry) { e.Actor.Role = "admin" },
		"action":  func(e *Entry) { e.Action = "restore2" },
		"target":  func(e *Entry) { e.Target = "" },
		"outcome": func(e *Entry) { e.Outcome = OutcomeRefused },
		"details": func(e *Entry) { e.Details = map[string]string{"snapshot": "ab12", "into": "/var/restorE"} },
		"shift":   func(e *Entry) { e.Actor = Actor{Name: "alic", Role: "eoperator"} },
		"prev":    func(e *Entry) { e.Prev[31] ^= 1 },
	} {
		c := e
		c.Details = cloneDetails(e.Details)
		mut(&c)
		if ComputeHash(c) == base {
			t.Errorf("changing %s leaves the hash unchanged", name)
		}
	}
}

func validLine(t testing.TB) []byte {
	t.Helper()
	e := Entry{Seq: 1, Time: time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC), Actor: Actor{"web1", "client"},
		Action: "enrol", Target: "client:web1", Outcome: OutcomeOK, Details: map[string]string{"b": "<&>", "a": "é"}}
	e.Hash = ComputeHash(e)
	line, err := EncodeLine(e)
	if err != nil {
		t.Fatal(err)
	}
	return line
}

func TestDecodeLineCanonical(t *testing.T) {
	t.Parallel()
	line := validLine(t)
	e, err := DecodeLine(line)
	if err != nil {
		t.Fatalf("DecodeLine(%s): %v", line, err)
	}
	if e.Seq != 1 || e.Details["b"] != "<&>" || ComputeHash(e) != e.Hash {
		t.Fatalf("decoded %+v", e)
	}
	if !strings.HasPrefix(string(line), `{"seq":1,"time":"2026-01-02T03:04:05.000000006Z","actor":{"name":"web1","role":"client"},"action":"enrol"`) {
		t.Errorf("line %s", line)
	}
	s := string(line)
	for name, bad := range map[string]string{
		"space":         strings.Replace(s, `"seq":1`, `"seq": 1`, 1),
		"key order":     strings.Replace(s, `{"seq":1,"time":"2026-01-02T03:04:05.000000006Z"`, `{"time":"2026-01-02T03:04:05.000000006Z","seq":1`, 1),
		"offset":        strings.Replace(s, `05.000000006Z`, `05.000000006+00:00`, 1),
		"zone":          strings.Replace(s, `03:04:05.000000006Z`, `04:04:05.000000006+01:00`, 1),
		"unknown field": strings.Replace(s, `{"seq":1,`, `{"seq":1,"x":1,`, 1),
		"case":          strings.Replace(s, `"seq":1`, `"SEQ":1`, 1),
		"duplicate":     strings.Replace(s, `"seq":1,`, `"seq":1,"seq":1,`, 1),
		"escaped":       strings.Replace(s, `<&>`, `\u003c&>`, 1),
		"upper hex":     strings.Replace(s, `"prev":"00`, `"prev":"0A`, 1),
		"short hash":    strings.Replace(s, `"prev":"00`, `"prev":"`, 1),
		"null details":  strings.Replace(s, `"details":{"a":"é","b":"<&>"}`, `"details":null`, 1),
		"no outcome":    strings.Replace(s, `"outcome":"ok"`, `"outcome":""`, 1),
		"trailing":      strings.TrimSuffix(s, "\n") + " ",
		"two values":    strings.TrimSuffix(s, "\n") + "{}",
		"bad utf8":      strings.Replace(s, "é", "\xff", 1),
	} {
		if bad == s {
			t.Fatalf("%s: replacement did not apply", name)
		}
		if _, err := DecodeLine([]byte(bad)); !errors.Is(err, ErrInvalidEntry) {
			t.Errorf("%s: DecodeLine(%s) = %v, want ErrInvalidEntry", name, bad, err)
		}
	}
	if _, err := DecodeLine(bytes.Repeat([]byte("x"), MaxLineBytes)); !errors.Is(err, ErrInvalidEntry) {
		t.Errorf("long line: %v", err)
	}
}

func TestEncodeRefusesOversize(t *testing.T) {
	t.Parallel()
	e := Entry{Seq: 1, Time: time.Unix(0, 0), Action: "a", Outcome: "ok", Details: map[string]string{"x": strings.Repeat("y", MaxLineBytes)}}
	if _, err := EncodeLine(e); !errors.Is(err, ErrInvalidEntry) {
		t.Fatalf("EncodeLine of a huge entry = %v", err)
	}
}

// FuzzDecodeLine: DecodeLine never panics, and whatever it accepts is the
// canonical encoding of what it returns.
func FuzzDecodeLine(f *testing.F) {
	f.Add(validLine(f))
	f.Add([]byte(`{"seq":2,"time":"2026-01-02T03:04:05Z","actor":{"name":"","role":""},"action":"a","target":"","outcome":"ok","details":{},"prev":"0000000000000000000000000000000000000000000000000000000000000000","hash":"0000000000000000000000000000000000000000000000000000000000000000"}`))
	f.Add([]byte(`{"seq":1e3}`))
	f.Add([]byte("{}\n"))
	f.Fuzz(func(t *testing.T, line []byte) {
		e, err := DecodeLine(line)
		if err != nil {
			if !errors.Is(err, ErrInvalidEntry) {
				t.Fatalf("error %v does not wrap ErrInvalidEntry", err)
			}
			return
		}
		again, err := EncodeLine(e)
		if err != nil {
			t.Fatalf("accepted entry does not encode: %v", err)
		}
		if !bytes.Equal(again, append(bytes.TrimSuffix(line, []byte("\n")), '\n')) {
			t.Fatalf("accepted %q, canonical is %q", line, again)
		}
	})
}
