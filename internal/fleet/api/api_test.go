package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

const id1 = "0123456789abcdef0123456789abcdef"

var snap = strings.Repeat("ab", 32)

func validMessages() []*Message {
	now := time.Date(2026, 12, 6, 1, 0, 0, 0, time.UTC)
	return []*Message{
		{Type: MsgPing, Time: now},
		{Type: MsgPolicy, Time: now, Policy: json.RawMessage(`{"key":"k","policy":"cA==","sig":"c2ln"}`)},
		{Type: MsgCancel, Time: now, Cancel: id1},
		{Type: MsgJob, Time: now, Job: &Job{ID: id1, Kind: KindBackup, Repository: "main", Created: now}},
		{Type: MsgJob, Time: now, Job: &Job{ID: id1, Kind: KindCheck, Repository: "main", Created: now, Check: &Check{ReadDataSubset: "10%"}}},
		{Type: MsgJob, Time: now, Job: &Job{ID: id1, Kind: KindRestore, Repository: "main", Created: now,
			Restore: &Restore{Snapshot: "latest", Target: "/var/restore/x", Include: []string{"/etc"}}}},
		{Type: MsgJob, Time: now, Job: &Job{ID: id1, Kind: KindPrune, Repository: "main", Created: now,
			Grant: &Grant{Snapshots: []string{snap}, NotBefore: now, NotAfter: now.Add(time.Hour)}}},
	}
}

func TestMessageRoundTrip(t *testing.T) {
	for _, m := range validMessages() {
		line, err := EncodeMessage(m)
		if err != nil {
			t.Fatalf("%s: %v", m.Type, err)
		}
		if bytes.Count(line, []byte("\n")) != 1 || line[len(line)-1] != '\n' {
			t.Fatalf("%s: not one line: %q", m.Type, line)
		}
		got, err := DecodeMessage(line[:len(line)-1])
		if err != nil {
			t.Fatalf("%s: decode: %v", m.Type, err)
		}
		again, _ := EncodeMessage(got)
		if !bytes.Equal(again, line) {
			t.Errorf("%s: round trip changed it:\n%s\n%s", m.Type, line, again)
		}
	}
}

func TestMessageRefusals(t *testing.T) {
	cases := map[string]string{
		"unknown type":     `{"type":"exec","time":"2026-12-06T01:00:00Z"}`,
		"no time":          `{"type":"ping","time":"0001-01-01T00:00:00Z"}`,
		"unknown field":    `{"type":"ping","time":"2026-12-06T01:00:00Z","cmd":"rm"}`,
		"trailing":         `{"type":"ping","time":"2026-12-06T01:00:00Z"} {}`,
		"ping with job":    `{"type":"ping","time":"2026-12-06T01:00:00Z","cancel":"` + id1 + `"}`,
		"bad cancel id":    `{"type":"cancel","time":"2026-12-06T01:00:00Z","cancel":"../x"}`,
		"job bad kind":     `{"type":"job","time":"2026-12-06T01:00:00Z","job":{"id":"` + id1 + `","kind":"shell","repository":"main","created":"2026-12-06T01:00:00Z"}}`,
		"job bad repo":     `{"type":"job","time":"2026-12-06T01:00:00Z","job":{"id":"` + id1 + `","kind":"backup","repository":"../main","created":"2026-12-06T01:00:00Z"}}`,
		"restore relative": `{"type":"job","time":"2026-12-06T01:00:00Z","job":{"id":"` + id1 + `","kind":"restore","repository":"main","created":"2026-12-06T01:00:00Z","restore":{"snapshot":"latest","target":"x"}}}`,
		"backup w/ grant":  `{"type":"job","time":"2026-12-06T01:00:00Z","job":{"id":"` + id1 + `","kind":"backup","repository":"main","created":"2026-12-06T01:00:00Z","grant":{"snapshots":[],"not_before":"2026-12-06T01:00:00Z","not_after":"2026-12-06T02:00:00Z"}}}`,
		"grant empty":      `{"type":"job","time":"2026-12-06T01:00:00Z","job":{"id":"` + id1 + `","kind":"prune","repository":"main","created":"2026-12-06T01:00:00Z","grant":{"snapshots":[],"not_before":"2026-12-06T01:00:00Z","not_after":"2026-12-06T01:00:00Z"}}}`,
		"too big":          `{"type":"ping","time":"2026-12-06T01:00:00Z","x":"` + strings.Repeat("a", MaxMessage) + `"}`,
	}
	for name, line := range cases {
		if _, err := DecodeMessage([]byte(line)); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: got %v, want ErrInvalid", name, err)
		}
	}
}

func validReport() *Report {
	start := time.Date(2026, 12, 6, 1, 0, 0, 0, time.UTC)
	return &Report{Job: id1, Kind: KindBackup, Repository: "main", State: StateSucceeded, Scheduled: true,
		Start: start, End: start.Add(time.Minute), Snapshot: snap, Stats: Stats{FilesNew: 3, BytesAdded: 100}}
}

func TestReportRoundTripAndRefusals(t *testing.T) {
	body, err := EncodeReport(validReport())
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeReport(body)
	if err != nil || got.Stats.FilesNew != 3 || got.Snapshot != snap {
		t.Fatalf("decode: %+v, %v", got, err)
	}
	mutations := map[string]func(*Report){
		"missed from agent": func(r *Report) { r.State = StateMissed },
		"bad state":         func(r *Report) { r.State = "done" },
		"end before start":  func(r *Report) { r.End = r.Start.Add(-time.Second) },
		"negative":          func(r *Report) { r.Stats.BytesAdded = -1 },
		"bad snapshot":      func(r *Report) { r.Snapshot = "xyz" },
		"nul in error":      func(r *Report) { r.Error = "a\x00b" },
		"long error":        func(r *Report) { r.Error = strings.Repeat("e", maxText+1) },
		"bad utf8 file":     func(r *Report) { r.Files = []string{"\xff"} },
		"too many files":    func(r *Report) { r.Files = make([]string, maxFiles+1) },
		"bad job id":        func(r *Report) { r.Job = strings.ToUpper(id1) },
	}
	for name, mutate := range mutations {
		r := validReport()
		mutate(r)
		if _, err := EncodeReport(r); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: encode: %v", name, err)
		}
		if name == "bad utf8 file" {
			continue // json.Marshal mends it to U+FFFD; the raw bytes are tested below
		}
		b, _ := json.Marshal(r)
		if _, err := DecodeReport(b); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: decode: %v", name, err)
		}
	}
}

func TestReportRawInvalidUTF8(t *testing.T) {
	b, _ := EncodeReport(validReport())
	b = bytes.Replace(b, []byte(`"job"`), []byte(`"files":["\xff"],"job"`), 1)
	b = bytes.Replace(b, []byte(`\xff`), []byte{0xff}, 1)
	if _, err := DecodeReport(b); !errors.Is(err, ErrInvalid) {
		t.Errorf("raw invalid UTF-8 in a file name: %v", err)
	}
}

func TestFinalStates(t *testing.T) {
	for _, s := range []JobState{StateQueued, StateRunning} {
		if s.Final() {
			t.Errorf("%s is final", s)
		}
	}
	for _, s := range []JobState{StateSucceeded, StateWarning, StateFailed, StateSkipped, StateMissed, StateCancelled} {
		if !s.Final() {
			t.Errorf("%s is not final", s)
		}
	}
}

// Anything DecodeMessage or DecodeReport accepts encodes again and decodes
// to the same value.
func FuzzDecode(f *testing.F) {
	for _, m := range validMessages() {
		b, _ := EncodeMessage(m)
		f.Add(b[:len(b)-1])
	}
	b, _ := EncodeReport(validReport())
	f.Add(b)
	f.Fuzz(func(t *testing.T, data []byte) {
		if m, err := DecodeMessage(data); err == nil {
			line, err := EncodeMessage(m)
			if err != nil {
				t.Fatalf("accepted message does not encode: %v", err)
			}
			if _, err := DecodeMessage(line[:len(line)-1]); err != nil {
				t.Fatalf("re-encoded message refused: %v", err)
			}
		}
		if r, err := DecodeReport(data); err == nil {
			body, err := EncodeReport(r)
			if err != nil {
				t.Fatalf("accepted report does not encode: %v", err)
			}
			if _, err := DecodeReport(body); err != nil {
				t.Fatalf("re-encoded report refused: %v", err)
			}
		}
	})
}

// A policy report (the agent refused a policy) has a job ID, no
// repository, state failed and the reason; nothing else passes, and a job
// message can never be of kind policy.
func TestPolicyReport(t *testing.T) {
	ok := &Report{Job: id1, Kind: KindPolicy, State: StateFailed, Error: "policy signature does not verify"}
	body, err := EncodeReport(ok)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := DecodeReport(body); err != nil || got.Kind != KindPolicy {
		t.Fatalf("decode: %+v, %v", got, err)
	}
	for name, mutate := range map[string]func(*Report){
		"repository": func(r *Report) { r.Repository = "main" },
		"succeeded":  func(r *Report) { r.State = StateSucceeded },
		"no error":   func(r *Report) { r.Error = "" },
		"bad id":     func(r *Report) { r.Job = "x" },
		"nul":        func(r *Report) { r.Error = "a\x00" },
	} {
		r := *ok
		mutate(&r)
		if _, err := EncodeReport(&r); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v", name, err)
		}
	}
	now := time.Now()
	m := &Message{Type: MsgJob, Time: now, Job: &Job{ID: id1, Kind: KindPolicy, Repository: "main", Created: now}}
	if _, err := EncodeMessage(m); !errors.Is(err, ErrInvalid) {
		t.Errorf("a policy job message: %v", err)
	}
}
