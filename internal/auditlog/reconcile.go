package auditlog

import (
	"fmt"
	"strconv"
)

// Reconcile compares the opened log with kept, the chain head the caller
// stored after its last append, and settles the one difference a crash
// leaves: entries appended before the crash whose head was never stored.
// It accepts them when they follow kept (the first one's prev is kept's
// hash) and at most one of them is a caller's entry (one Append writes one
// entry and perhaps a checkpoint; Open and Close add the log's own); it
// then appends an ActionRepaired entry naming what it adopted and returns
// the adopted entries, oldest first (when only Open's repair of a partial
// line follows kept, that entry is returned and nothing is appended). A log at kept returns nothing. Every
// other difference is a *VerifyError: ErrTruncated when the log ends
// before kept, ErrTampered when the entry after kept does not follow it,
// ErrAheadOfHead when more follows than a crash can leave. The caller
// stores the head the log has afterwards.
func (l *Log) Reconcile(kept Head) ([]Entry, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.head == kept {
		return nil, nil
	}
	ahead, err := l.aheadOf(kept)
	if err != nil {
		return nil, fmt.Errorf("reconcile audit log %s with the kept head: %w", l.dir, err)
	}
	if kept == l.resumed {
		return ahead, nil // only Open's own repair entry follows: it says what happened
	}
	adopted := strconv.FormatUint(ahead[0].Seq, 10)
	if n := len(ahead); n > 1 {
		adopted += "-" + strconv.FormatUint(ahead[n-1].Seq, 10)
	}
	l.opts.Logger.Warn("audit log: adopted entries appended before a crash whose chain head was not stored",
		"dir", l.dir, "kept_seq", kept.Seq, "adopted", adopted)
	rep := Entry{
		Actor:   Actor{Name: "coffer", Role: RoleServer},
		Action:  ActionRepaired,
		Target:  segmentName(l.segment),
		Outcome: OutcomeOK,
		Details: map[string]string{
			"adopted": adopted,
			"reason":  "appended before a crash, head not stored",
		},
	}
	if _, err := l.appendLocked(rep); err != nil {
		return nil, fmt.Errorf("reconcile audit log %s: %w", l.dir, err)
	}
	return ahead, nil
}

// aheadOf returns the remembered entries after kept, checking that they
// are what a crash can leave.
func (l *Log) aheadOf(kept Head) ([]Entry, error) {
	bad := func(seq uint64, kind error, format string, args ...any) error {
		return &VerifyError{File: segmentName(max(l.segment, 1)), Seq: seq, Problem: fmt.Sprintf(format, args...), Err: kind}
	}
	if l.head.Seq < kept.Seq {
		return nil, bad(l.head.Seq+1, ErrTruncated, "the log ends at seq %d but the kept head is seq %d: entries were cut off", l.head.Seq, kept.Seq)
	}
	if l.head.Seq == kept.Seq {
		return nil, bad(kept.Seq, ErrTampered, "the last entry's hash %s differs from the kept head's %s: the log was rewritten", l.head.Hash, kept.Hash)
	}
	var ahead []Entry
	for _, e := range l.tail {
		if e.Seq > kept.Seq {
			ahead = append(ahead, e)
		}
	}
	if len(ahead) == 0 || ahead[0].Seq != kept.Seq+1 {
		return nil, bad(kept.Seq+1, ErrAheadOfHead, "entries %d..%d follow the kept head: more than a crash can leave", kept.Seq+1, l.head.Seq)
	}
	if ahead[0].Prev != kept.Hash {
		return nil, bad(kept.Seq+1, ErrTampered, "seq %d does not follow the kept head: prev %s, kept hash %s", kept.Seq+1, ahead[0].Prev, kept.Hash)
	}
	callers := 0
	for _, e := range ahead {
		if e.Action != ActionCheckpoint && e.Action != ActionRepaired {
			callers++
		}
	}
	if callers > 1 {
		return nil, bad(kept.Seq+1, ErrAheadOfHead, "%d entries (%d..%d) follow the kept head: a crash leaves at most one", callers, kept.Seq+1, l.head.Seq)
	}
	return ahead, nil
}
