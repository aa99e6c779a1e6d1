package agent

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/coffer-backup/coffer/internal/atomicfile"
	"github.com/coffer-backup/coffer/internal/fleet/api"
)

// DefaultQueueLimit is how many undelivered reports the queue keeps.
const DefaultQueueLimit = 1000

// droppedFile holds the count of reports dropped and not yet told.
const droppedFile = "dropped"

// Queue keeps reports the server has not acknowledged, one file each
// (mode 0600) in a directory (mode 0700), oldest first by sequence number.
// It holds at most its limit: putting one more drops the oldest and counts
// it; the count rides on the next report delivered (Report.Dropped) and is
// forgotten only once the server took that report. A file that no longer
// decodes (edited, truncated by a crash) is dropped and counted the same
// way. Safe for concurrent use.
type Queue struct {
	dir   string
	limit int
	mu    sync.Mutex
	next  uint64
}

// OpenQueue opens (creating it) the queue in dir, keeping at most limit
// reports (0: DefaultQueueLimit).
func OpenQueue(dir string, limit int) (*Queue, error) {
	if limit <= 0 {
		limit = DefaultQueueLimit
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("report queue: %w", err)
	}
	q := &Queue{dir: dir, limit: limit}
	names, err := q.list()
	if err != nil {
		return nil, err
	}
	if len(names) > 0 {
		last, _ := seqOf(names[len(names)-1])
		q.next = last + 1
	}
	return q, nil
}

func seqOf(name string) (uint64, bool) {
	base, ok := strings.CutSuffix(name, ".json")
	if !ok || len(base) != 16 {
		return 0, false
	}
	n, err := strconv.ParseUint(base, 16, 64)
	return n, err == nil
}

// list returns the queued reports' file names, oldest first.
func (q *Queue) list() ([]string, error) {
	entries, err := os.ReadDir(q.dir)
	if err != nil {
		return nil, fmt.Errorf("report queue: %w", err)
	}
	var names []string
	for _, e := range entries {
		if _, ok := seqOf(e.Name()); ok && e.Type().IsRegular() {
			names = append(names, e.Name())
		}
	}
	slices.Sort(names)
	return names, nil
}

// Put validates r and queues it, dropping the oldest reports beyond the
// limit.
func (q *Queue) Put(r *api.Report) error {
	body, err := api.EncodeReport(r)
	if err != nil {
		return fmt.Errorf("queue report: %w", err)
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	name := fmt.Sprintf("%016x.json", q.next)
	q.next++
	if err := atomicfile.Write(filepath.Join(q.dir, name), body, 0o600); err != nil {
		return fmt.Errorf("queue report: %w", err)
	}
	names, err := q.list()
	if err != nil {
		return err
	}
	var dropped int64
	for len(names) > q.limit {
		if err := os.Remove(filepath.Join(q.dir, names[0])); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("report queue: %w", err)
		}
		names = names[1:]
		dropped++
	}
	return q.addDropped(dropped)
}

// Len returns how many reports wait.
func (q *Queue) Len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	names, _ := q.list()
	return len(names)
}

// Peek returns the oldest report with the dropped count set, and its
// name for Done; ok is false when the queue is empty.
func (q *Queue) Peek() (name string, r *api.Report, ok bool, err error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for {
		names, err := q.list()
		if err != nil || len(names) == 0 {
			return "", nil, false, err
		}
		name = names[0]
		body, rerr := os.ReadFile(filepath.Join(q.dir, name)) // #nosec G304 -- a name listed in the queue's own directory
		if rerr == nil {
			r, rerr = api.DecodeReport(body)
		}
		if rerr == nil {
			d, err := q.dropped()
			if err != nil {
				return "", nil, false, err
			}
			r.Dropped = d
			return name, r, true, nil
		}
		// Unreadable: dropped, and counted like a report the limit dropped.
		if err := os.Remove(filepath.Join(q.dir, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return "", nil, false, fmt.Errorf("report queue: %w", err)
		}
		if err := q.addDropped(1); err != nil {
			return "", nil, false, err
		}
	}
}

// Done removes the delivered report name and subtracts the dropped count
// it carried.
func (q *Queue) Done(name string, told int64) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if _, ok := seqOf(name); !ok {
		return fmt.Errorf("report queue: %q is not a queued report", name)
	}
	if err := os.Remove(filepath.Join(q.dir, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("report queue: %w", err)
	}
	return q.addDropped(-told)
}

func (q *Queue) dropped() (int64, error) {
	b, err := os.ReadFile(filepath.Join(q.dir, droppedFile)) // #nosec G304 -- the queue's own file
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("report queue: %w", err)
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil || n < 0 {
		// A damaged count is not worth losing reports over: start again.
		return 0, nil
	}
	return n, nil
}

func (q *Queue) addDropped(delta int64) error {
	if delta == 0 {
		return nil
	}
	n, err := q.dropped()
	if err != nil {
		return err
	}
	n = max(n+delta, 0)
	if err := atomicfile.Write(filepath.Join(q.dir, droppedFile), []byte(strconv.FormatInt(n, 10)+"\n"), 0o600); err != nil {
		return fmt.Errorf("report queue: %w", err)
	}
	return nil
}
