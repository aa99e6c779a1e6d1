package audit

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/coffer-backup/coffer/internal/auditlog"
	"github.com/coffer-backup/coffer/internal/server/state"
)

// VerifyReport is what `coffer server audit verify` found (its --json
// output, docs/json.md).
type VerifyReport struct {
	OK             bool   `json:"ok"`
	Segments       int    `json:"segments"`
	Entries        uint64 `json:"entries"` // complete entries read
	Checkpoints    int    `json:"checkpoints"`
	LastCheckpoint uint64 `json:"last_checkpoint"` // seq; 0: none
	HeadSeq        uint64 `json:"head_seq"`        // the log's last entry read
	HeadHash       string `json:"head_hash"`
	KeptSeq        uint64 `json:"kept_seq"` // the head the database keeps
	KeptHash       string `json:"kept_hash"`
	// PendingEvents counts events in the database the log has not taken
	// yet (the server appends them while it runs).
	PendingEvents int      `json:"pending_events"`
	Problem       *Problem `json:"problem,omitempty"` // the first bad place; nil when OK
}

// Problem names the first bad place in the log.
type Problem struct {
	Kind        string `json:"kind"` // tampered, truncated, ahead-of-head, partial-line
	File        string `json:"file"` // segment, e.g. "00000001.jsonl"
	Line        int    `json:"line"`
	Seq         uint64 `json:"seq"`
	Description string `json:"description"`
}

// verifyRetries bounds how often Verify reads the head again when the log
// is ahead of it: a running server appends between the two reads.
const verifyRetries = 5

// Verify checks the log in dir/audit against the audit key's public half
// and the head the database keeps. A bad log returns the report, its
// Problem filled in, and the *auditlog.VerifyError, which wraps one of
// auditlog's sentinels. With a server running, a log found ahead of the
// head or ending in a partial line is read again, with the head, a few
// times before it is reported.
func Verify(ctx context.Context, dir string, db Store) (*VerifyReport, error) {
	pub, err := publicKey(dir)
	if err != nil {
		return nil, err
	}
	var (
		rep  *VerifyReport
		verr error
	)
	for try := 0; try < verifyRetries; try++ {
		if try > 0 {
			time.Sleep(time.Duration(try) * 50 * time.Millisecond)
		}
		rep, verr, err = verifyOnce(ctx, dir, db, pub)
		if err != nil {
			return nil, err
		}
		if !errors.Is(verr, auditlog.ErrAheadOfHead) && !errors.Is(verr, auditlog.ErrPartialLine) {
			break
		}
	}
	return rep, verr
}

// publicKey is the audit key's public half; a directory without a key has
// an empty log, checked against a key nobody holds.
func publicKey(dir string) (ed25519.PublicKey, error) {
	key, err := state.LoadAuditKey(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return make(ed25519.PublicKey, ed25519.PublicKeySize), nil
	}
	if err != nil {
		return nil, err
	}
	pub, _ := key.Public().(ed25519.PublicKey)
	return pub, nil
}

// verifyOnce returns the report, the verification's finding (a
// *VerifyError) and any other failure.
func verifyOnce(ctx context.Context, dir string, db Store, pub ed25519.PublicKey) (*VerifyReport, error, error) {
	kept, err := db.AuditHead(ctx)
	if err != nil {
		return nil, nil, err
	}
	r, verr := verifyLog(filepath.Join(dir, state.AuditDir), pub, auditlog.Head{Seq: kept.Seq, Hash: kept.Hash})
	var ve *auditlog.VerifyError
	if verr != nil && !errors.As(verr, &ve) {
		return nil, nil, verr
	}
	rep := &VerifyReport{
		OK: verr == nil, Segments: r.Segments, Entries: r.Entries, Checkpoints: r.Checkpoints, LastCheckpoint: r.LastCheckpoint,
		HeadSeq: r.Head.Seq, HeadHash: r.Head.Hash.String(), KeptSeq: kept.Seq, KeptHash: auditlog.Hash(kept.Hash).String(),
	}
	if ve != nil {
		rep.Problem = &Problem{Kind: kindOf(ve.Err), File: ve.File, Line: ve.Line, Seq: ve.Seq, Description: ve.Problem}
	}
	evs, err := db.EventsAfter(ctx, kept.EventID, 0)
	if err != nil {
		return nil, nil, err
	}
	rep.PendingEvents = len(evs)
	return rep, verr, nil
}

// verifyLog is auditlog.Verify, for which a missing directory (a server
// that never ran since the log came) is an empty log.
func verifyLog(dir string, pub ed25519.PublicKey, head auditlog.Head) (auditlog.Report, error) {
	if _, err := os.Lstat(dir); errors.Is(err, fs.ErrNotExist) && head.Seq == 0 {
		return auditlog.Report{}, nil
	}
	return auditlog.Verify(dir, pub, head)
}

func kindOf(err error) string {
	for _, k := range []struct {
		err  error
		kind string
	}{{auditlog.ErrTruncated, "truncated"}, {auditlog.ErrAheadOfHead, "ahead-of-head"}, {auditlog.ErrPartialLine, "partial-line"}} {
		if errors.Is(err, k.err) {
			return k.kind
		}
	}
	return "tampered"
}

// Scan calls fn for each entry of the log in dir/audit at or after since,
// oldest first, without checking the chain (Verify does).
func Scan(dir string, since time.Time, fn func(auditlog.Entry) error) error {
	if _, err := os.Stat(filepath.Join(dir, state.ConfigFile)); err != nil {
		return fmt.Errorf("%w: %s (run coffer server init)", state.ErrNotInitialised, dir)
	}
	logDir := filepath.Join(dir, state.AuditDir)
	if _, err := os.Lstat(logDir); errors.Is(err, fs.ErrNotExist) {
		return nil // the server has not run since the audit log came
	}
	return auditlog.Scan(logDir, func(e auditlog.Entry) error {
		if e.Time.Before(since) {
			return nil
		}
		return fn(e)
	})
}

// ParseSince reads `--since`: an RFC 3339 time, a UTC date (2006-01-02),
// or a duration back from now in hours, minutes or seconds (90m, 36h) or
// days (7d).
func ParseSince(s string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.ParseUint(days, 10, 16)
		if err == nil && n <= 36600 {
			return now.AddDate(0, 0, -int(n)), nil
		}
	}
	d, err := time.ParseDuration(s)
	if err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("--since %q: want an RFC 3339 time (2026-12-05T10:00:00Z), a date (2026-12-05) or a duration back from now (36h, 7d)", s)
}
