package agent

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/coffer-backup/coffer/internal/fleet/api"
)

func queuedReport(i int) *api.Report {
	return &api.Report{Job: fmt.Sprintf("%032x", i+1), Kind: api.KindBackup, Repository: "main", State: api.StateSucceeded,
		Start: time.Unix(int64(i), 0).UTC(), End: time.Unix(int64(i+1), 0).UTC()}
}

// The queue keeps at most its limit, drops the oldest, and tells the count
// on the next report delivered; once that one is done the count is gone.
// Files are 0600 in a 0700 directory, and survive reopening in order.
func TestQueueBoundedWithDroppedCount(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "q")
	q, err := OpenQueue(dir, 3)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if err := q.Put(queuedReport(i)); err != nil {
			t.Fatal(err)
		}
	}
	if n := q.Len(); n != 3 {
		t.Fatalf("%d queued, want 3", n)
	}
	if fi, _ := os.Stat(dir); fi.Mode().Perm() != 0o700 {
		t.Errorf("queue directory mode %04o", fi.Mode().Perm())
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if fi, _ := e.Info(); fi.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %04o", e.Name(), fi.Mode().Perm())
		}
	}
	q, err = OpenQueue(dir, 3) // reopened: order and count kept
	if err != nil {
		t.Fatal(err)
	}
	name, r, ok, err := q.Peek()
	if err != nil || !ok || r.Job != queuedReport(2).Job || r.Dropped != 2 {
		t.Fatalf("peek: %+v, %v, %v; want the third report with 2 dropped", r, ok, err)
	}
	if err := q.Done(name, r.Dropped); err != nil {
		t.Fatal(err)
	}
	_, r, _, _ = q.Peek()
	if r.Job != queuedReport(3).Job || r.Dropped != 0 {
		t.Fatalf("next: %+v; want the fourth report, nothing dropped", r)
	}
	if err := q.Put(queuedReport(9)); err != nil {
		t.Fatal(err)
	}
	names, _ := q.list()
	if len(names) != 3 || names[2] <= names[1] {
		t.Fatalf("after reopening, new reports go last: %v", names)
	}
	if err := q.Put(&api.Report{Job: "bad"}); err == nil {
		t.Fatal("an invalid report was queued")
	}
	if err := q.Done("../x", 0); err == nil {
		t.Fatal("Done removed a file outside the queue's names")
	}
}

// A queued file that no longer decodes is dropped and counted, and the
// next report is delivered.
func TestQueueDropsDamagedFile(t *testing.T) {
	t.Parallel()
	q, err := OpenQueue(t.TempDir(), 0)
	if err != nil {
		t.Fatal(err)
	}
	_ = q.Put(queuedReport(0))
	_ = q.Put(queuedReport(1))
	names, _ := q.list()
	if err := os.WriteFile(filepath.Join(q.dir, names[0]), []byte(`{"job":`), 0o600); err != nil {
		t.Fatal(err)
	}
	_, r, ok, err := q.Peek()
	if err != nil || !ok || r.Job != queuedReport(1).Job || r.Dropped != 1 {
		t.Fatalf("peek: %+v, %v, %v", r, ok, err)
	}
}

// Reports wait while the server is down; when more pile up than the
// limit, the first one delivered says how many were dropped.
func TestAgentQueueDroppedReachesServer(t *testing.T) {
	t.Parallel()
	f := newFleet(t, "web9")
	f.setDown(true)
	startAgent(t, f, func(c *Config) { c.QueueLimit = 2 })
	// Five reports wait in the agent's queue directory, as jobs run
	// while the server was away would have left them.
	q, _ := OpenQueue(filepath.Join(f.dir, QueueDir), 2)
	for i := range 5 {
		_ = q.Put(queuedReport(i))
	}
	f.setDown(false)
	r := f.waitReport(10*time.Second, "with dropped", func(r *api.Report) bool { return r.Dropped > 0 })
	if r.Dropped != 3 || r.Job != queuedReport(3).Job {
		t.Fatalf("first report delivered: %+v; want the fourth, 3 dropped", *r)
	}
	f.waitReport(5*time.Second, "last", func(r *api.Report) bool { return r.Job == queuedReport(4).Job && r.Dropped == 0 })
}

func TestBackoffBounds(t *testing.T) {
	t.Parallel()
	for n := range 40 {
		d := backoff(n, time.Second, time.Minute)
		want := min(time.Second<<min(n, 20), time.Minute)
		if d < want/2 || d > want {
			t.Fatalf("attempt %d: %s, want in [%s, %s]", n, d, want/2, want)
		}
	}
}

func FuzzQueueFile(f *testing.F) {
	b, _ := api.EncodeReport(queuedReport(0))
	f.Add(b)
	f.Add([]byte("{}"))
	f.Fuzz(func(t *testing.T, data []byte) {
		q, err := OpenQueue(t.TempDir(), 4)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(q.dir, "0000000000000000.json"), data, 0o600); err != nil {
			t.Fatal(err)
		}
		_, r, ok, err := q.Peek()
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			if verr := r.Validate(); verr != nil {
				t.Fatalf("Peek returned an invalid report: %v", verr)
			}
		} else if d, _ := q.dropped(); d != 1 {
			t.Fatalf("a bad file was dropped without being counted (%d)", d)
		}
	})
}

func FuzzReadServer(f *testing.F) {
	f.Add("127.0.0.1:8443\n")
	f.Add("[::1]:1\n")
	f.Add("host")
	f.Fuzz(func(t *testing.T, s string) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, ServerFile), []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		got, err := ReadServer(dir)
		if err != nil {
			return
		}
		if err := WriteServer(dir, got); err != nil {
			t.Fatalf("ReadServer accepted %q, WriteServer refuses it: %v", got, err)
		}
		if again, err := ReadServer(dir); err != nil || again != got {
			t.Fatalf("round trip %q: %q, %v", got, again, err)
		}
	})
}
