package auditlog

import (
	"bufio"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// Sentinel errors Verify wraps in a *VerifyError; callers branch with
// errors.Is.
var (
	// ErrTampered: an entry was edited, removed, inserted or reordered, a
	// segment is missing, or a checkpoint signature does not verify.
	ErrTampered = errors.New("audit log tampered")
	// ErrTruncated: the log ends before the chain head the caller kept.
	ErrTruncated = errors.New("audit log truncated")
	// ErrPartialLine: the last line is incomplete, as a crash during an
	// append leaves it; Open cuts it off. Not a sign of tampering.
	ErrPartialLine = errors.New("audit log ends in a partial line (interrupted append)")
	// ErrAheadOfHead: the chain is sound up to the kept head, and entries
	// follow it. A crash between an append and storing its head leaves
	// one; anything else means entries were added behind the server's back.
	ErrAheadOfHead = errors.New("audit log has entries after the kept chain head")
)

// VerifyError names the first bad place in a log.
type VerifyError struct {
	File    string // segment file name, e.g. "00000003.jsonl"
	Line    int    // 1-based line in File
	Seq     uint64 // the sequence number written there, or expected there
	Problem string // what is wrong, in words
	Err     error  // ErrTampered, ErrTruncated, ErrPartialLine or ErrAheadOfHead
}

func (e *VerifyError) Error() string {
	return fmt.Sprintf("%s line %d (seq %d): %s: %v", e.File, e.Line, e.Seq, e.Problem, e.Err)
}

func (e *VerifyError) Unwrap() error { return e.Err }

// Report summarises a verified log.
type Report struct {
	Segments       int
	Entries        uint64 // complete entries read
	Checkpoints    int
	LastCheckpoint uint64 // seq of the last checkpoint, 0 if none
	Head           Head   // the last complete entry
}

// chain checks entries one after the other.
type chain struct {
	pub ed25519.PublicKey
	// started: the next entry must follow last; false accepts the first
	// entry as it is (Open resuming in the middle of the log).
	started     bool
	last        Entry
	sinceCkpt   int
	checkpoints int
	lastCkpt    uint64
}

func (c *chain) next(file string, line int, raw []byte) error {
	bad := func(seq uint64, format string, args ...any) error {
		return &VerifyError{File: file, Line: line, Seq: seq, Problem: fmt.Sprintf(format, args...), Err: ErrTampered}
	}
	e, err := DecodeLine(raw)
	if err != nil {
		return bad(c.last.Seq+1, "line cannot be decoded: %v", err)
	}
	if c.started {
		switch {
		case e.Seq <= c.last.Seq:
			return bad(e.Seq, "seq %d follows seq %d: entry duplicated or out of order", e.Seq, c.last.Seq)
		case e.Seq > c.last.Seq+1:
			return bad(e.Seq, "seq %d follows seq %d: entries %d..%d are missing", e.Seq, c.last.Seq, c.last.Seq+1, e.Seq-1)
		case e.Prev != c.last.Hash:
			return bad(e.Seq, "prev does not match the hash of seq %d: an entry was inserted or rewritten", c.last.Seq)
		}
	}
	if ComputeHash(e) != e.Hash {
		return bad(e.Seq, "hash does not match the entry's content: the entry was edited")
	}
	if e.Action == ActionCheckpoint {
		if err := checkCheckpoint(e, c.pub); err != nil {
			return bad(e.Seq, "%v: entries after seq %d were rewritten, or the key is not the log's", err, c.lastCkpt)
		}
		c.checkpoints++
		c.lastCkpt = e.Seq
		c.sinceCkpt = 0
	} else {
		c.sinceCkpt++
	}
	c.started = true
	c.last = e
	return nil
}

// eachLine calls fn for every line of a segment, newline included; the last
// one may be partial (no newline), which complete reports.
func eachLine(path string, fn func(n int, line []byte, complete bool) error) error {
	f, err := os.Open(path) // #nosec G304 -- a segment of the log being read
	if err != nil {
		return err
	}
	defer func() { _ = f.Close() }()
	r := bufio.NewReaderSize(f, MaxLineBytes+1)
	for n := 1; ; n++ {
		line, err := r.ReadSlice('\n')
		switch {
		case errors.Is(err, bufio.ErrBufferFull):
			return &VerifyError{File: filepath.Base(path), Line: n, Problem: fmt.Sprintf("line longer than %d bytes", MaxLineBytes), Err: ErrTampered}
		case errors.Is(err, io.EOF):
			if len(line) > 0 {
				return fn(n, line, false)
			}
			if n == 1 {
				return &VerifyError{File: filepath.Base(path), Line: 1, Problem: "segment is empty", Err: ErrTampered}
			}
			return nil
		case err != nil:
			return fmt.Errorf("read %s: %w", path, err)
		}
		if err := fn(n, line, true); err != nil {
			return err
		}
	}
}

// place is where an entry sits.
type place struct {
	file string
	line int
	seq  uint64
	hash Hash
}

// Verify checks the log in dir against pub (the key that signs its
// checkpoints) and head (the chain head the caller kept; the zero Head for
// an empty log). It reads every segment in order and checks that the
// segments are numbered 1, 2, ... without a gap, that every line is a
// canonical entry whose hash matches, that sequence numbers start at 1 and
// follow each other, that each entry's prev is its predecessor's hash, that
// every checkpoint's signature verifies, and that the log ends exactly at
// head. The first failure is returned as a *VerifyError wrapping
// ErrTampered, ErrTruncated, ErrAheadOfHead or ErrPartialLine (checked in
// that order of precedence at the end of the log). The Report covers what
// was read before it.
func Verify(dir string, pub ed25519.PublicKey, head Head) (Report, error) {
	var rep Report
	if len(pub) != ed25519.PublicKeySize {
		return rep, errors.New("verify audit log: an Ed25519 public key is required")
	}
	ns, err := segments(dir)
	if err != nil {
		return rep, fmt.Errorf("verify audit log: %w", err)
	}
	c := chain{pub: pub, started: true}
	var (
		end, atHead, afterHead place
		partial                *VerifyError
	)
	for i, n := range ns {
		name := segmentName(n)
		if n != i+1 {
			return rep, &VerifyError{File: segmentName(i + 1), Line: 1, Seq: c.last.Seq + 1, Problem: "segment is missing", Err: ErrTampered}
		}
		rep.Segments++
		lastSeg := i == len(ns)-1
		err := eachLine(filepath.Join(dir, name), func(line int, raw []byte, complete bool) error {
			if !complete {
				p := &VerifyError{File: name, Line: line, Seq: c.last.Seq + 1, Problem: fmt.Sprintf("%d bytes without a newline", len(raw))}
				if !lastSeg || line == 1 {
					// A segment's first line is written whole, and only
					// the last segment is appended to.
					p.Problem += " where an interrupted append cannot leave them"
					p.Err = ErrTampered
					return p
				}
				p.Err = ErrPartialLine
				partial = p
				return nil
			}
			if err := c.next(name, line, raw); err != nil {
				return err
			}
			rep.Entries++
			end = place{name, line, c.last.Seq, c.last.Hash}
			switch c.last.Seq {
			case head.Seq:
				atHead = end
			case head.Seq + 1:
				afterHead = end
			}
			return nil
		})
		rep.Checkpoints, rep.LastCheckpoint, rep.Head = c.checkpoints, c.lastCkpt, c.last.Head()
		var ve *VerifyError
		if errors.As(err, &ve) && ve.Seq == 0 {
			ve.Seq = c.last.Seq + 1
		}
		if err != nil {
			return rep, fmt.Errorf("verify audit log %s: %w", dir, err)
		}
	}
	if err := checkEnd(end, atHead, afterHead, head, partial); err != nil {
		return rep, fmt.Errorf("verify audit log %s: %w", dir, err)
	}
	return rep, nil
}

// checkEnd compares the end of a sound chain with the kept head.
func checkEnd(end, atHead, afterHead place, head Head, partial *VerifyError) error {
	switch {
	case end.seq < head.Seq:
		file, line := end.file, end.line+1
		if file == "" {
			file = segmentName(1)
		}
		if partial != nil {
			file, line = partial.File, partial.Line
		}
		return &VerifyError{File: file, Line: line, Seq: end.seq + 1,
			Problem: fmt.Sprintf("the log ends at seq %d but the kept head is seq %d: entries %d..%d were cut off", end.seq, head.Seq, end.seq+1, head.Seq),
			Err:     ErrTruncated}
	case head.Seq > 0 && atHead.hash != head.Hash:
		return &VerifyError{File: atHead.file, Line: atHead.line, Seq: head.Seq,
			Problem: fmt.Sprintf("hash %s differs from the kept head's %s: the log was rewritten up to here", atHead.hash, head.Hash),
			Err:     ErrTampered}
	case end.seq > head.Seq:
		return &VerifyError{File: afterHead.file, Line: afterHead.line, Seq: head.Seq + 1,
			Problem: fmt.Sprintf("entries %d..%d follow the kept head", head.Seq+1, end.seq),
			Err:     ErrAheadOfHead}
	case partial != nil:
		return partial
	}
	return nil
}

// Scan calls fn for every complete entry in dir, oldest first, without
// checking the chain (Verify does); a partial last line is skipped. It stops
// at fn's first error and returns it.
func Scan(dir string, fn func(Entry) error) error {
	ns, err := segments(dir)
	if err != nil {
		return fmt.Errorf("read audit log: %w", err)
	}
	for _, n := range ns {
		name := segmentName(n)
		err := eachLine(filepath.Join(dir, name), func(line int, raw []byte, complete bool) error {
			if !complete {
				return nil
			}
			e, err := DecodeLine(raw)
			if err != nil {
				return fmt.Errorf("%s line %d: %w", name, line, err)
			}
			return fn(e)
		})
		if err != nil {
			return fmt.Errorf("read audit log %s: %w", dir, err)
		}
	}
	return nil
}
