package repository

import (
	"encoding/json"
	"errors"
	"testing"
	"time"
)

func TestRemapParent(t *testing.T) {
	a, b, c, d := NewRandomID(), NewRandomID(), NewRandomID(), NewRandomID()
	known := map[ID]ID{a: b, b: c}
	s := &Snapshot{Time: time.Unix(1, 0).UTC(), Tree: d, Paths: []string{"/x"}, Hostname: "h", Parent: &a}
	plain, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	out, err := remapParent(plain, known)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeSnapshot(d, out)
	if err != nil {
		t.Fatal(err)
	}
	if got.Parent == nil || *got.Parent != c {
		t.Fatalf("parent %v, want the end of the chain %s", got.Parent, c.Short())
	}
	if got.Tree != d || got.Hostname != "h" || !got.Time.Equal(s.Time) {
		t.Fatalf("other fields changed: %+v", got)
	}
	// Nothing to change: the bytes stay as they are.
	for _, p := range []*ID{nil, &d} {
		s.Parent = p
		plain, _ := json.Marshal(s)
		out, err := remapParent(plain, known)
		if err != nil || string(out) != string(plain) {
			t.Fatalf("parent %v: %s -> %s (%v)", p, plain, out, err)
		}
	}
	if _, err := remapParent([]byte(`{"parent":"zz"}`), known); err == nil {
		t.Fatal("bad parent accepted")
	}
	// A cycle (only a forged record could make one) ends.
	if got := ResolveReplacement(map[ID]ID{a: b, b: a}, a); got != a && got != b {
		t.Fatalf("cycle resolved to %s", got.Short())
	}
}

func TestDecodeReplacementRecord(t *testing.T) {
	a, b := NewRandomID(), NewRandomID()
	good := ReplacementRecord{ForgetRecord: ForgetRecord{Time: time.Unix(5, 0).UTC(), Host: "h", Snapshots: []ID{a}}, ReplacedBy: map[ID]ID{a: b}}
	plain, _ := json.Marshal(good)
	rec, err := DecodeReplacementRecord(plain)
	if err != nil || rec.ReplacedBy[a] != b || len(rec.Snapshots) != 1 {
		t.Fatalf("%+v %v", rec, err)
	}
	// An ordinary forget record reads as one without replacements, and a
	// replacement record as an ordinary forget record.
	plain2, _ := json.Marshal(ForgetRecord{Time: time.Unix(5, 0).UTC(), Snapshots: []ID{a}})
	if rec, err := DecodeReplacementRecord(plain2); err != nil || len(rec.ReplacedBy) != 0 {
		t.Fatalf("%+v %v", rec, err)
	}
	var fr ForgetRecord
	if err := json.Unmarshal(plain, &fr); err != nil || len(fr.Snapshots) != 1 || fr.Snapshots[0] != a {
		t.Fatalf("as a forget record: %+v %v", fr, err)
	}
	for _, bad := range []ReplacementRecord{
		{ForgetRecord: ForgetRecord{Snapshots: []ID{b}}, ReplacedBy: map[ID]ID{a: b}}, // replaced but not forgotten
		{ForgetRecord: ForgetRecord{Snapshots: []ID{a}}, ReplacedBy: map[ID]ID{a: a}}, // replaces itself
	} {
		plain, _ := json.Marshal(bad)
		if _, err := DecodeReplacementRecord(plain); !errors.Is(err, ErrBadReplacement) {
			t.Fatalf("%s: %v", plain, err)
		}
	}
}

func FuzzDecodeReplacementRecord(f *testing.F) {
	a, b := NewRandomID(), NewRandomID()
	seed, _ := json.Marshal(ReplacementRecord{ForgetRecord: ForgetRecord{Snapshots: []ID{a}}, ReplacedBy: map[ID]ID{a: b}})
	f.Add(seed)
	f.Add([]byte(`{"time":"2026-01-01T00:00:00Z","host":"h","snapshots":[]}`))
	f.Add([]byte(`{"replaced_by":{"00":"11"}}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, b []byte) {
		rec, err := DecodeReplacementRecord(b)
		if err != nil {
			if !errors.Is(err, ErrBadReplacement) {
				t.Fatalf("error %v does not wrap ErrBadReplacement", err)
			}
			return
		}
		for o, n := range rec.ReplacedBy {
			if o == n {
				t.Fatal("self-replacement accepted")
			}
			found := false
			for _, s := range rec.Snapshots {
				found = found || s == o
			}
			if !found {
				t.Fatal("replacement of a snapshot not forgotten accepted")
			}
		}
		// What decodes re-encodes and decodes the same.
		again, err := json.Marshal(rec)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := DecodeReplacementRecord(again); err != nil {
			t.Fatalf("re-encoded record rejected: %v", err)
		}
	})
}
