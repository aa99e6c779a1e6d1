package control

import (
	"errors"
	"testing"
	"time"

	"github.com/coffer-backup/coffer/internal/fleet/api"
	"github.com/coffer-backup/coffer/internal/schedule"
	"github.com/coffer-backup/coffer/internal/serverdb"
)

const jobID = "0123456789abcdef0123456789abcdef"

func report(state api.JobState, scheduled bool) *api.Report {
	r := &api.Report{Job: jobID, Kind: api.KindBackup, Repository: "main", State: state, Scheduled: scheduled,
		Start: time.Unix(100, 0).UTC()}
	if state.Final() {
		r.End = time.Unix(200, 0).UTC()
	}
	return r
}

// stored applies reports in order to an empty table and returns the job.
func stored(t *testing.T, client string, reps ...*api.Report) (serverdb.Job, bool) {
	t.Helper()
	var cur serverdb.Job
	found := false
	for i, r := range reps {
		next, err := applyReport(cur, found, client, r, time.Unix(int64(1000+i), 0))
		if err != nil {
			t.Fatalf("report %d: %v", i, err)
		}
		if next != nil {
			cur, found = *next, true
		}
	}
	return cur, found
}

func TestReportStateMachine(t *testing.T) {
	t.Parallel()
	now := time.Unix(5000, 0)
	running, done := report(api.StateRunning, true), report(api.StateSucceeded, true)
	j, _ := stored(t, "web1", running, done)
	if j.State != "succeeded" || j.Client != "web1" || !j.Scheduled || j.Updated != time.Unix(1001, 0) {
		t.Fatalf("stored %+v", j)
	}

	// A replay of the same report changes nothing.
	if next, err := applyReport(j, true, "web1", done, now); err != nil || next != nil {
		t.Fatalf("replay: %v, %v; want no change", next, err)
	}
	// A late report of an earlier state is ignored.
	if next, err := applyReport(j, true, "web1", running, now); err != nil || next != nil {
		t.Fatalf("late running: %v, %v; want no change", next, err)
	}
	// Another final state contradicts the stored one.
	if _, err := applyReport(j, true, "web1", report(api.StateFailed, true), now); !errors.Is(err, serverdb.ErrConflict) && !errors.Is(err, errConflict) {
		t.Fatalf("other final state: %v, want a conflict", err)
	}
	// Another host's job is refused, whatever the report says.
	if _, err := applyReport(j, true, "web2", done, now); !errors.Is(err, ErrForbidden) {
		t.Fatalf("another host's job: %v, want ErrForbidden", err)
	}
	// A report that changes the job's kind is refused.
	other := *done
	other.Kind = api.KindCheck
	if _, err := applyReport(j, true, "web1", &other, now); !errors.Is(err, errConflict) {
		t.Fatalf("kind changed: %v, want a conflict", err)
	}
	// An ordered job the server does not know is refused.
	if _, err := applyReport(serverdb.Job{}, false, "web1", report(api.StateRunning, false), now); !errors.Is(err, errNotFound) {
		t.Fatalf("unknown ordered job: %v, want not found", err)
	}
}

func TestReportReplacesAServerSetState(t *testing.T) {
	t.Parallel()
	cur := serverdb.Job{ID: jobID, Client: "web1", Kind: "backup", Repository: "main", State: "failed", Scheduled: true,
		Created: time.Unix(1, 0), Error: ServerRestarted, ServerSet: true}
	next, err := applyReport(cur, true, "web1", report(api.StateSucceeded, true), time.Unix(9, 0))
	if err != nil || next == nil || next.State != "succeeded" || next.ServerSet || next.Error != "" {
		t.Fatalf("agent's report after a restart: %+v, %v", next, err)
	}
	// Even a running report: the job goes on.
	next, err = applyReport(cur, true, "web1", report(api.StateRunning, true), time.Unix(9, 0))
	if err != nil || next == nil || next.State != "running" {
		t.Fatalf("running after a restart: %+v, %v", next, err)
	}
}

func TestReportKeepsOrderedFields(t *testing.T) {
	t.Parallel()
	cur := serverdb.Job{ID: jobID, Client: "web1", Kind: "backup", Repository: "main", State: "queued",
		Created: time.Unix(1, 0), Spec: []byte(`{}`), OrderedBy: "user:alice", CancelRequested: true}
	next, err := applyReport(cur, true, "web1", report(api.StateRunning, false), time.Unix(9, 0))
	if err != nil || next == nil {
		t.Fatal(err)
	}
	if string(next.Spec) != "{}" || next.OrderedBy != "user:alice" || !next.CancelRequested || !next.Created.Equal(time.Unix(1, 0)) {
		t.Fatalf("ordered fields lost: %+v", next)
	}
	// A scheduled report for an ordered job's ID is refused.
	if _, err := applyReport(cur, true, "web1", report(api.StateRunning, true), time.Unix(9, 0)); !errors.Is(err, errConflict) {
		t.Fatalf("scheduled report for an ordered job: %v", err)
	}
}

func TestUnderRoot(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		target string
		ok     bool
	}{
		{"/var/restore", true},
		{"/var/restore/x", true},
		{"/var/restore/x/y", true},
		{"/var/restorex", false},
		{"/var/restore/../etc", false},
		{"/var/restore/./x", false},
		{"/etc", false},
		{"var/restore/x", false},
		{"/", false},
		{"", false},
	} {
		err := UnderRoot("/var/restore", tc.target)
		if (err == nil) != tc.ok || err != nil && !errors.Is(err, ErrRefused) {
			t.Errorf("UnderRoot(%q) = %v, want ok %v", tc.target, err, tc.ok)
		}
	}
}

func TestOlderVersion(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		a, b  string
		older bool
	}{
		{"0.1.0", "0.2.0", true},
		{"0.2.0", "0.1.0", false},
		{"1.0", "1.0.1", true},
		{"v1.2.3", "1.2.3", false},
		{"1.2.3-dev", "1.2.4", true},
		{"1.10.0", "1.9.0", false},
		{"garbage", "1.0.0", false},
		{"1.0.0", "", false},
	} {
		if got := olderVersion(tc.a, tc.b); got != tc.older {
			t.Errorf("olderVersion(%q, %q) = %v", tc.a, tc.b, got)
		}
	}
}

func TestRPO(t *testing.T) {
	t.Parallel()
	s, err := schedule.Parse("every 1h")
	if err != nil {
		t.Fatal(err)
	}
	var tm schedule.Timing // grace: one cadence
	last := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		after time.Duration
		want  string
	}{
		{30 * time.Minute, api.RPOOk},
		{90 * time.Minute, api.RPOLate},
		{2*time.Hour + time.Second, api.RPOMissed},
	} {
		if got := rpoOf(s, tm, last, time.Time{}, last.Add(tc.after)); got != tc.want {
			t.Errorf("%s after the last success: %s, want %s", tc.after, got, tc.want)
		}
		// A host that never succeeded counts from when it was first watched.
		if got := rpoOf(s, tm, time.Time{}, last, last.Add(tc.after)); got != tc.want {
			t.Errorf("%s after the watch started: %s, want %s", tc.after, got, tc.want)
		}
	}
}
