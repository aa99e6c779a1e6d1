package auditlog

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func newKey(t testing.TB) (ed25519.PublicKey, ed25519.PrivateKey) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	return pub, priv
}

// clock returns a Now that starts at start and moves step per call.
func clock(start time.Time, step time.Duration) func() time.Time {
	var mu sync.Mutex
	now := start
	return func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		now = now.Add(step)
		return now
	}
}

func entry(i int) Entry {
	return Entry{
		Actor:   Actor{Name: fmt.Sprintf("host%d", i%7), Role: "client"},
		Action:  []string{"enrol", "policy", "restore", "delete"}[i%4],
		Target:  fmt.Sprintf("client:host%d", i%5),
		Outcome: []string{OutcomeOK, OutcomeRefused, OutcomeFailed}[i%3],
		Details: map[string]string{"i": fmt.Sprint(i), "note": strings.Repeat("n", i%11)},
	}
}

func mustOpen(t testing.TB, dir string, opts Options) *Log {
	t.Helper()
	l, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func mustVerify(t testing.TB, dir string, pub ed25519.PublicKey, head Head) Report {
	t.Helper()
	rep, err := Verify(dir, pub, head)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	return rep
}

func TestAppendRotateReopen(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "audit")
	pub, key := newKey(t)
	opts := Options{Key: key, MaxSegmentBytes: 2000, CheckpointEvery: 7, Now: clock(time.Date(2026, 12, 5, 0, 0, 0, 0, time.UTC), time.Second)}
	l := mustOpen(t, dir, opts)
	var last Entry
	for i := range 30 {
		e, err := l.Append(entry(i))
		if err != nil {
			t.Fatal(err)
		}
		// A checkpoint follows every 7th entry.
		want := last.Seq + 1
		if i > 0 && i%7 == 0 {
			want++
		}
		if e.Seq != want || (i%7 != 0 && e.Prev != last.Hash) || e.Hash != ComputeHash(e) || e.Time.Location() != time.UTC {
			t.Fatalf("entry %d: %+v after %+v", i, e, last)
		}
		last = e
	}
	// 30 entries and a checkpoint after every 7th.
	if h := l.Head(); h.Seq != 34 {
		t.Fatalf("head %d, want 34", h.Seq)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append(entry(0)); !errors.Is(err, ErrClosed) {
		t.Fatalf("Append after Close = %v", err)
	}
	head := l.Head()
	rep := mustVerify(t, dir, pub, head)
	if rep.Entries != 35 || rep.Checkpoints != 5 || rep.LastCheckpoint != 35 || rep.Segments < 3 {
		t.Fatalf("report %+v", rep)
	}
	ns, err := segments(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range ns {
		fi, err := os.Stat(filepath.Join(dir, segmentName(n)))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 || fi.Size() > opts.MaxSegmentBytes {
			t.Errorf("%s: mode %v size %d", fi.Name(), fi.Mode(), fi.Size())
		}
	}
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("dir: %v %v", fi.Mode(), err)
	}

	// Reopen: the chain resumes where it stopped.
	l = mustOpen(t, dir, opts)
	if l.Head() != head {
		t.Fatalf("reopened head %+v, want %+v", l.Head(), head)
	}
	e, err := l.Append(entry(99))
	if err != nil || e.Seq != head.Seq+1 || e.Prev != head.Hash {
		t.Fatalf("append after reopen: %+v %v", e, err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	rep = mustVerify(t, dir, pub, l.Head())
	if rep.Entries != 37 {
		t.Fatalf("report %+v", rep)
	}
	var seqs []uint64
	if err := Scan(dir, func(e Entry) error { seqs = append(seqs, e.Seq); return nil }); err != nil {
		t.Fatal(err)
	}
	for i, s := range seqs {
		if s != uint64(i+1) {
			t.Fatalf("Scan: seq %d at %d", s, i)
		}
	}
	if len(seqs) != 37 {
		t.Fatalf("Scan read %d entries", len(seqs))
	}
}

func TestDailyRotation(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	pub, key := newKey(t)
	l := mustOpen(t, dir, Options{Key: key, Daily: true, Now: clock(time.Date(2026, 12, 5, 23, 0, 0, 0, time.UTC), 25*time.Minute)})
	for i := range 5 { // 23:25, 23:50, 00:15, 00:40, 01:05
		if _, err := l.Append(entry(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if rep := mustVerify(t, dir, pub, l.Head()); rep.Segments != 2 {
		t.Fatalf("%d segments, want 2", rep.Segments)
	}
	first, err := os.ReadFile(filepath.Join(dir, segmentName(1)))
	if err != nil {
		t.Fatal(err)
	}
	if n := bytes.Count(first, []byte("\n")); n != 2 || bytes.Contains(first, []byte("2026-12-06")) {
		t.Fatalf("segment 1 holds %d lines:\n%s", n, first)
	}
}

func TestAppendConcurrent(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	pub, key := newKey(t)
	l := mustOpen(t, dir, Options{Key: key, MaxSegmentBytes: 4096, CheckpointEvery: 10})
	const workers, each = 8, 25
	seen := make(chan uint64, workers*each)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				e, err := l.Append(entry(w*each + i))
				if err != nil {
					t.Error(err)
					return
				}
				seen <- e.Seq
			}
		})
	}
	wg.Add(1)
	go func() { // checkpoints and heads requested meanwhile
		defer wg.Done()
		for range 20 {
			if _, err := l.Checkpoint(); err != nil {
				t.Error(err)
			}
			_ = l.Head()
		}
	}()
	wg.Wait()
	close(seen)
	got := map[uint64]bool{}
	for s := range seen {
		if got[s] {
			t.Fatalf("seq %d given twice", s)
		}
		got[s] = true
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	rep := mustVerify(t, dir, pub, l.Head())
	if rep.Entries != uint64(workers*each+rep.Checkpoints) || len(got) != workers*each {
		t.Fatalf("report %+v, %d appends", rep, len(got))
	}
	for s := range got {
		if s > rep.Head.Seq {
			t.Fatalf("seq %d past head %d", s, rep.Head.Seq)
		}
	}
}

func TestAppendRefuses(t *testing.T) {
	t.Parallel()
	_, key := newKey(t)
	l := mustOpen(t, t.TempDir(), Options{Key: key})
	for name, e := range map[string]Entry{
		"checkpoint": {Action: ActionCheckpoint, Outcome: OutcomeOK},
		"repaired":   {Action: ActionRepaired, Outcome: OutcomeOK},
		"no action":  {Outcome: OutcomeOK},
		"no outcome": {Action: "x"},
		"utf8":       {Action: "x", Outcome: OutcomeOK, Target: "\xff"},
		"utf8 key":   {Action: "x", Outcome: OutcomeOK, Details: map[string]string{"\xfe": ""}},
		"huge":       {Action: "x", Outcome: OutcomeOK, Target: strings.Repeat("t", MaxLineBytes)},
	} {
		if _, err := l.Append(e); !errors.Is(err, ErrInvalidEntry) {
			t.Errorf("%s: Append = %v, want ErrInvalidEntry", name, err)
		}
	}
	if h := l.Head(); h.Seq != 0 {
		t.Fatalf("refused entries moved the head to %d", h.Seq)
	}
	if e, err := l.Checkpoint(); err != nil || e.Seq != 0 {
		t.Fatalf("checkpoint of an empty log: %+v %v", e, err)
	}
	if _, err := Open(t.TempDir(), Options{}); err == nil {
		t.Fatal("Open without a key succeeded")
	}
}

// TestCrashMidAppend cuts the last line as a crash during its write would,
// and checks that Verify says so distinctly, and that Open repairs it only
// by cutting that line off, logs it and records it.
func TestCrashMidAppend(t *testing.T) {
	t.Parallel()
	for _, cut := range []int{1, 2, 40, -1} { // bytes cut from the end; -1: all but one byte of the line
		t.Run(fmt.Sprint(cut), func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			pub, key := newKey(t)
			opts := Options{Key: key, MaxSegmentBytes: 1500, CheckpointEvery: 4}
			l := mustOpen(t, dir, opts)
			for i := range 13 {
				if _, err := l.Append(entry(i)); err != nil {
					t.Fatal(err)
				}
			}
			kept := l.Head()
			last := l.segment
			path := filepath.Join(dir, segmentName(last))
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			lines := bytes.Count(data, []byte("\n"))
			lineLen := len(data) - (bytes.LastIndexByte(data[:len(data)-1], '\n') + 1)
			n := cut
			if n < 0 {
				n = lineLen - 1
			}
			if lines < 2 {
				t.Fatalf("segment has %d lines", lines)
			}
			_ = l.f.Close() // the crash: no Close, no checkpoint
			if err := os.Truncate(path, int64(len(data)-n)); err != nil {
				t.Fatal(err)
			}
			// The kept head is the one before the torn append.
			torn, err := DecodeLine(data[len(data)-lineLen:])
			if err != nil || torn.Head() != kept {
				t.Fatalf("last line %+v, %v; head %+v", torn, err, kept)
			}
			prev := Head{Seq: torn.Seq - 1, Hash: torn.Prev}
			_, err = Verify(dir, pub, prev)
			var ve *VerifyError
			if !errors.As(err, &ve) || !errors.Is(err, ErrPartialLine) || errors.Is(err, ErrTampered) || ve.File != segmentName(last) || ve.Line != lines || ve.Seq != kept.Seq {
				t.Fatalf("Verify after a torn append = %v, want ErrPartialLine at %s line %d seq %d", err, segmentName(last), lines, kept.Seq)
			}
			// With the head of the torn entry itself, it is truncation.
			if _, err := Verify(dir, pub, kept); !errors.Is(err, ErrTruncated) {
				t.Fatalf("Verify with the torn entry's head = %v, want ErrTruncated", err)
			}

			var logged bytes.Buffer
			opts.Logger = slog.New(slog.NewTextHandler(&logged, nil))
			l = mustOpen(t, dir, opts)
			if !strings.Contains(logged.String(), "removed a partial last line") || !strings.Contains(logged.String(), fmt.Sprintf("bytes=%d", lineLen-n)) {
				t.Fatalf("repair not logged: %q", logged.String())
			}
			h := l.Head()
			if h.Seq != prev.Seq+1 {
				t.Fatalf("head after repair %d, want %d", h.Seq, prev.Seq+1)
			}
			var rec Entry
			if err := Scan(dir, func(e Entry) error { rec = e; return nil }); err != nil {
				t.Fatal(err)
			}
			if rec.Action != ActionRepaired || rec.Prev != prev.Hash || rec.Details["bytes"] != fmt.Sprint(lineLen-n) {
				t.Fatalf("repair entry %+v", rec)
			}
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			mustVerify(t, dir, pub, l.Head())
		})
	}
}

func TestOpenRefusesTamperedTail(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	_, key := newKey(t)
	l := mustOpen(t, dir, Options{Key: key})
	for i := range 3 {
		if _, err := l.Append(entry(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, segmentName(1))
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, bytes.Replace(data, []byte("host1"), []byte("host9"), 1), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir, Options{Key: key}); !errors.Is(err, ErrTampered) {
		t.Fatalf("Open of a tampered log = %v, want ErrTampered", err)
	}
	// Another key's log: the checkpoint does not verify.
	_, other := newKey(t)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir, Options{Key: other}); !errors.Is(err, ErrTampered) {
		t.Fatalf("Open with another key = %v, want ErrTampered", err)
	}
}

type failingSink struct{ n int }

func (s *failingSink) Write(Entry) error { s.n++; return errors.New("sink down") }

func TestSinkFailureDoesNotFailAppend(t *testing.T) {
	t.Parallel()
	_, key := newKey(t)
	var logged bytes.Buffer
	s := &failingSink{}
	l := mustOpen(t, t.TempDir(), Options{Key: key, Sinks: []Sink{s}, Logger: slog.New(slog.NewTextHandler(&logged, nil))})
	for i := range 3 {
		if _, err := l.Append(entry(i)); err != nil {
			t.Fatal(err)
		}
	}
	if s.n != 3 || !strings.Contains(logged.String(), "failures=3") {
		t.Fatalf("sink called %d times, log %q", s.n, logged.String())
	}
}
