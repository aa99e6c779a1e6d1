package auditlog

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/coffer-backup/coffer/internal/atomicfile"
)

// Defaults for Options' zero values.
const (
	DefaultMaxSegmentBytes = 64 << 20
	DefaultCheckpointEvery = 1000
)

// ErrClosed is returned by a Log used after Close.
var ErrClosed = errors.New("audit log is closed")

// Sink receives every entry after it is durably appended, in sequence
// order, from inside Append: a Sink must not block for long. A Sink's error
// is logged and counted; it never fails the Append.
type Sink interface {
	Write(e Entry) error
}

// Options configure a Log. The zero value of every field but Key is useful.
type Options struct {
	// Key signs checkpoints. Required.
	Key ed25519.PrivateKey
	// MaxSegmentBytes starts a new segment before one would grow past it
	// (0: DefaultMaxSegmentBytes). A segment always holds at least one entry.
	MaxSegmentBytes int64
	// Daily also starts a new segment when the UTC day changes.
	Daily bool
	// CheckpointEvery appends a signed checkpoint after that many entries
	// (0: DefaultCheckpointEvery). Close and Checkpoint add one too.
	CheckpointEvery int
	// Now is the clock (nil: time.Now).
	Now func() time.Time
	// Sinks also receive each entry (for example a SyslogSink).
	Sinks []Sink
	// Logger reports repairs and sink failures (nil: slog.Default()).
	Logger *slog.Logger
}

// Log is an open audit log directory. Its methods are safe for concurrent
// use. One process appends to a directory at a time (the server holds its
// state directory's lock).
type Log struct {
	dir  string
	opts Options

	mu        sync.Mutex
	f         *os.File // the last segment, O_APPEND
	segment   int      // its number
	size      int64    // its size
	day       string   // the UTC day of its first entry, "2006-01-02"
	head      Head
	sinceCkpt int   // entries since the last checkpoint
	broken    error // a failed write leaves the log unusable until reopened
	sinkErrs  int
	tail      []Entry // the last entries read or appended, at most tailLen
	resumed   Head    // the head Open found, before any repair it appended
}

// tailLen bounds Log.tail: enough for Reconcile, which accepts at most one
// caller entry and the log's own entries after the kept head.
const tailLen = 8

func (l *Log) remember(e Entry) {
	if len(l.tail) == tailLen {
		l.tail = append(l.tail[:0], l.tail[1:]...)
	}
	l.tail = append(l.tail, e)
}

// segmentName is the file name of segment n: 8 digits then ".jsonl".
func segmentName(n int) string { return fmt.Sprintf("%08d.jsonl", n) }

// segments lists the segment numbers in dir, ascending. Other names
// (temporary files of an interrupted rotation, for one) are ignored.
func segments(dir string) ([]int, error) {
	des, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var ns []int
	for _, de := range des {
		name := de.Name()
		if len(name) != len("00000000.jsonl") || filepath.Ext(name) != ".jsonl" {
			continue
		}
		n, err := strconv.Atoi(name[:8])
		if err != nil || n < 1 || segmentName(n) != name {
			continue
		}
		ns = append(ns, n)
	}
	sort.Ints(ns)
	return ns, nil
}

// Open opens (creating if needed, mode 0700) the log in dir and resumes its
// chain from the last segment. A partial last line, left by a crash during
// an append, is cut off (the only repair Open makes), reported to the
// Logger and recorded as an ActionRepaired entry. Any other damage in the
// last segment fails Open with the *VerifyError that Verify would return.
func Open(dir string, opts Options) (*Log, error) {
	if len(opts.Key) != ed25519.PrivateKeySize {
		return nil, errors.New("open audit log: an Ed25519 signing key is required")
	}
	if opts.MaxSegmentBytes <= 0 {
		opts.MaxSegmentBytes = DefaultMaxSegmentBytes
	}
	if opts.CheckpointEvery <= 0 {
		opts.CheckpointEvery = DefaultCheckpointEvery
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("open audit log: %w", err)
	}
	l := &Log{dir: dir, opts: opts}
	ns, err := segments(dir)
	if err != nil {
		return nil, fmt.Errorf("open audit log: %w", err)
	}
	if len(ns) == 0 {
		return l, nil
	}
	repaired, err := l.resume(ns[len(ns)-1])
	if err != nil {
		return nil, fmt.Errorf("open audit log %s: %w", dir, err)
	}
	if repaired != nil {
		if _, err := l.appendLocked(*repaired); err != nil {
			_ = l.f.Close()
			return nil, fmt.Errorf("open audit log %s: %w", dir, err)
		}
	}
	return l, nil
}

// resume reads the last segment n, checks its chain and sets the head. It
// returns the entry recording a repair, if it made one.
func (l *Log) resume(n int) (*Entry, error) {
	name := segmentName(n)
	path := filepath.Join(l.dir, name)
	data, err := os.ReadFile(path) // #nosec G304 -- a segment in the log's own directory
	if err != nil {
		return nil, err
	}
	var repaired *Entry
	if cut := len(data) - (bytes.LastIndexByte(data, '\n') + 1); cut > 0 {
		keep := len(data) - cut
		if keep == 0 {
			return nil, &VerifyError{File: name, Line: 1, Problem: "segment holds only a partial line", Err: ErrTampered}
		}
		if err := truncate(path, int64(keep)); err != nil {
			return nil, err
		}
		line := bytes.Count(data[:keep], []byte("\n")) + 1
		l.opts.Logger.Warn("audit log: removed a partial last line left by an interrupted append",
			"file", path, "line", line, "offset", keep, "bytes", cut)
		repaired = &Entry{
			Actor:   Actor{Name: "coffer", Role: RoleServer},
			Action:  ActionRepaired,
			Target:  name,
			Outcome: OutcomeOK,
			Details: map[string]string{"line": strconv.Itoa(line), "offset": strconv.Itoa(keep), "bytes": strconv.Itoa(cut)},
		}
		data = data[:keep]
	}
	if len(data) == 0 {
		return nil, &VerifyError{File: name, Line: 1, Problem: "segment is empty", Err: ErrTampered}
	}
	pub, _ := l.opts.Key.Public().(ed25519.PublicKey)
	c := chain{pub: pub, started: n == 1}
	for i, line := range bytes.SplitAfter(data[:len(data)-1], []byte("\n")) {
		if err := c.next(name, i+1, line); err != nil {
			return nil, err
		}
		if i == 0 {
			l.day = c.last.Time.Format(time.DateOnly)
		}
		l.remember(c.last)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0o600) // #nosec G304 -- as above
	if err != nil {
		return nil, err
	}
	l.f, l.segment, l.size, l.head, l.sinceCkpt = f, n, int64(len(data)), c.last.Head(), c.sinceCkpt
	l.resumed = l.head
	return repaired, nil
}

func truncate(path string, size int64) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0) // #nosec G304 -- a segment in the log's own directory
	if err != nil {
		return err
	}
	if err := f.Truncate(size); err != nil {
		_ = f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}

// Append stamps e with the next sequence number, the time, the previous
// hash and its own hash, writes it as one line and fsyncs it; then it hands
// it to the sinks. It returns the stored entry: e.Head() is the new chain
// head for the caller to keep. Every CheckpointEvery entries it appends a
// signed checkpoint after e; should that fail, Append returns the stored e
// with the error. Entries with the log's own actions are refused.
func (l *Log) Append(e Entry) (Entry, error) {
	if e.Action == ActionCheckpoint || e.Action == ActionRepaired {
		return Entry{}, fmt.Errorf("append to audit log: %w: action %q is the log's own", ErrInvalidEntry, e.Action)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	out, err := l.appendLocked(e)
	if err != nil {
		return Entry{}, err
	}
	if l.sinceCkpt >= l.opts.CheckpointEvery {
		if _, err := l.checkpointLocked(); err != nil {
			return out, err
		}
	}
	return out, nil
}

// Checkpoint appends a signed checkpoint over the chain so far, unless the
// last entry already is one (then it returns the zero Entry and nil).
func (l *Log) Checkpoint() (Entry, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.checkpointLocked()
}

func (l *Log) checkpointLocked() (Entry, error) {
	if l.sinceCkpt == 0 {
		return Entry{}, nil
	}
	return l.appendLocked(newCheckpoint(l.head, l.opts.Key))
}

// SinkErrors returns how many times a sink has failed since Open.
func (l *Log) SinkErrors() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.sinkErrs
}

// Head returns the current chain head.
func (l *Log) Head() Head {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.head
}

// Close appends a checkpoint if entries follow the last one, and closes the
// segment. The Log is unusable afterwards.
func (l *Log) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if errors.Is(l.broken, ErrClosed) {
		return nil
	}
	var err error
	if l.broken == nil {
		_, err = l.checkpointLocked()
	}
	if l.f != nil {
		if cerr := l.f.Close(); err == nil {
			err = cerr
		}
	}
	l.broken = ErrClosed
	if err != nil {
		return fmt.Errorf("close audit log: %w", err)
	}
	return nil
}

// Abandon closes the segment without appending anything (Close appends a
// checkpoint): for a caller that will not use a log it found wrong. The
// Log is unusable afterwards.
func (l *Log) Abandon() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.broken = ErrClosed
	if l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}

func (l *Log) appendLocked(e Entry) (Entry, error) {
	if l.broken != nil {
		return Entry{}, fmt.Errorf("append to audit log: %w", l.broken)
	}
	if err := checkStrings(e); err != nil {
		return Entry{}, fmt.Errorf("append to audit log: %w", err)
	}
	e.Seq = l.head.Seq + 1
	e.Time = l.opts.Now().UTC()
	e.Prev = l.head.Hash
	e.Details = cloneDetails(e.Details)
	e.Hash = ComputeHash(e)
	line, err := EncodeLine(e)
	if err != nil {
		return Entry{}, fmt.Errorf("append to audit log: %w", err)
	}
	if err := l.write(line, e.Time.Format(time.DateOnly)); err != nil {
		l.broken = fmt.Errorf("an earlier write failed, reopen the log: %w", err)
		return Entry{}, fmt.Errorf("append to audit log: %w", err)
	}
	l.head = e.Head()
	l.remember(e)
	if e.Action == ActionCheckpoint {
		l.sinceCkpt = 0
	} else {
		l.sinceCkpt++
	}
	for _, s := range l.opts.Sinks {
		if err := s.Write(e); err != nil {
			l.sinkErrs++
			l.opts.Logger.Warn("audit log: sink failed", "seq", e.Seq, "failures", l.sinkErrs, "err", err)
		}
	}
	return e, nil
}

func cloneDetails(d map[string]string) map[string]string {
	out := make(map[string]string, len(d))
	for k, v := range d {
		out[k] = v
	}
	return out
}

// write appends line to the current segment, or starts the next segment
// with it (written whole by atomicfile, so a segment never appears empty).
func (l *Log) write(line []byte, day string) error {
	rotate := l.f == nil || l.size+int64(len(line)) > l.opts.MaxSegmentBytes || l.opts.Daily && day != l.day
	if !rotate {
		if _, err := l.f.Write(line); err != nil {
			return fmt.Errorf("%s: %w", segmentName(l.segment), err)
		}
		if err := l.f.Sync(); err != nil {
			return fmt.Errorf("%s: fsync: %w", segmentName(l.segment), err)
		}
		l.size += int64(len(line))
		return nil
	}
	n := l.segment + 1
	path := filepath.Join(l.dir, segmentName(n))
	if err := atomicfile.WriteNew(path, line, 0o600); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0o600) // #nosec G304 -- a segment in the log's own directory
	if err != nil {
		return err
	}
	if l.f != nil {
		_ = l.f.Close() // synced after its last append
	}
	l.f, l.segment, l.size, l.day = f, n, int64(len(line)), day
	return nil
}
