package auditlog

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// crashAfter appends n entries to a new log in dir, keeping the head after
// the first keep of them, and abandons the log without Close (a crash).
func crashAfter(t *testing.T, dir string, opts Options, n, keep int) Head {
	t.Helper()
	l := mustOpen(t, dir, opts)
	var kept Head
	for i := range n {
		if _, err := l.Append(entry(i)); err != nil {
			t.Fatal(err)
		}
		if i+1 == keep {
			kept = l.Head()
		}
	}
	_ = l.f.Close()
	return kept
}

func TestReconcile(t *testing.T) {
	t.Parallel()
	pub, key := newKey(t)
	base := func() Options {
		return Options{Key: key, CheckpointEvery: 3, Now: clock(time.Date(2026, 12, 5, 0, 0, 0, 0, time.UTC), time.Second)}
	}
	t.Run("at head", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		kept := crashAfter(t, dir, base(), 2, 2)
		l := mustOpen(t, dir, base())
		if got, err := l.Reconcile(kept); err != nil || got != nil {
			t.Fatalf("Reconcile = %v, %v; want nothing", got, err)
		}
	})
	t.Run("one entry ahead is adopted and recorded", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		kept := crashAfter(t, dir, base(), 2, 1)
		l := mustOpen(t, dir, base())
		got, err := l.Reconcile(kept)
		if err != nil || len(got) != 1 || got[0].Seq != 2 {
			t.Fatalf("Reconcile = %v, %v; want seq 2 adopted", got, err)
		}
		last := l.tail[len(l.tail)-1]
		if last.Action != ActionRepaired || last.Details["adopted"] != "2" {
			t.Fatalf("last entry %+v, want a log-repaired entry adopting seq 2", last)
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		mustVerify(t, dir, pub, l.Head())
	})
	t.Run("an entry and its checkpoint ahead are adopted", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		// The third append also writes a checkpoint (seq 4).
		kept := crashAfter(t, dir, base(), 3, 2)
		l := mustOpen(t, dir, base())
		got, err := l.Reconcile(kept)
		if err != nil || len(got) != 2 || got[1].Action != ActionCheckpoint {
			t.Fatalf("Reconcile = %v, %v; want seq 3 and its checkpoint", got, err)
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		mustVerify(t, dir, pub, l.Head())
	})
	t.Run("a partial line repaired by Open is not recorded twice", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		kept := crashAfter(t, dir, base(), 2, 2)
		f, err := os.OpenFile(filepath.Join(dir, segmentName(1)), os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteString(`{"seq":3,"ti`); err != nil {
			t.Fatal(err)
		}
		_ = f.Close()
		l := mustOpen(t, dir, base())
		got, err := l.Reconcile(kept)
		if err != nil || len(got) != 1 || got[0].Action != ActionRepaired || l.Head().Seq != 3 {
			t.Fatalf("Reconcile = %v, %v, head %d; want Open's repair entry only", got, err, l.Head().Seq)
		}
	})
	refused := []struct {
		name       string
		n, keep    int
		kept       func(Head) Head
		wantErr    error
		wantSeqBad uint64
	}{
		{"two caller entries ahead", 2, 0, nil, ErrAheadOfHead, 1},
		{"many ahead", 6, 1, nil, ErrAheadOfHead, 2},
		{"log behind the head", 2, 2, func(h Head) Head { h.Seq += 3; return h }, ErrTruncated, 3},
		{"same seq, other hash", 2, 2, func(h Head) Head { h.Hash[0] ^= 1; return h }, ErrTampered, 2},
		{"ahead entry does not follow", 2, 1, func(h Head) Head { h.Hash[0] ^= 1; return h }, ErrTampered, 2},
	}
	for _, c := range refused {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			kept := crashAfter(t, dir, base(), c.n, c.keep)
			if c.kept != nil {
				kept = c.kept(kept)
			}
			l := mustOpen(t, dir, base())
			before := l.Head()
			_, err := l.Reconcile(kept)
			var ve *VerifyError
			if !errors.Is(err, c.wantErr) || !errors.As(err, &ve) || ve.Seq != c.wantSeqBad {
				t.Fatalf("Reconcile: %v; want %v at seq %d", err, c.wantErr, c.wantSeqBad)
			}
			if l.Head() != before {
				t.Fatalf("a refused Reconcile appended: head %d, was %d", l.Head().Seq, before.Seq)
			}
		})
	}
}

func TestNewSyslogDoesNotDial(t *testing.T) {
	t.Parallel()
	// Nothing listens there: NewSyslog succeeds, the Write fails.
	s, err := NewSyslog("unixgram", filepath.Join(t.TempDir(), "none"), SyslogOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Write(Entry{Seq: 1, Action: "enrol", Outcome: OutcomeOK, Time: time.Now()}); err == nil {
		t.Fatal("Write to a missing socket succeeded")
	}
	for _, bad := range [][2]string{{"http", "x:1"}, {"udp", ""}} {
		if _, err := NewSyslog(bad[0], bad[1], SyslogOptions{}); err == nil {
			t.Errorf("NewSyslog(%q, %q) succeeded", bad[0], bad[1])
		}
	}
}
