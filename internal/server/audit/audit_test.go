package audit

import (
	"context"
	"crypto/ed25519"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coffer-backup/coffer/internal/auditlog"
	"github.com/coffer-backup/coffer/internal/server/state"
	"github.com/coffer-backup/coffer/internal/serverdb"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// stateDir is a state directory with just what a Trail uses: a database,
// the audit key and a configuration file (for Scan).
func stateDir(t *testing.T) (string, *serverdb.SQLite, ed25519.PrivateKey) {
	t.Helper()
	dir := t.TempDir()
	db, err := serverdb.Open(context.Background(), filepath.Join(dir, serverdb.DefaultFile))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	key, err := state.EnsureAuditKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, state.ConfigFile), []byte("{}"), 0o600); err != nil {
		t.Fatal(err)
	}
	return dir, db, key
}

func openTrail(t *testing.T, dir string, db Store, key ed25519.PrivateKey) *Trail {
	t.Helper()
	tr, err := Open(context.Background(), Options{Dir: dir, DB: db, Key: key, Logger: quiet, CheckpointEvery: 4})
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

func entries(t *testing.T, dir string) []auditlog.Entry {
	t.Helper()
	var out []auditlog.Entry
	if err := Scan(dir, time.Time{}, func(e auditlog.Entry) error { out = append(out, e); return nil }); err != nil {
		t.Fatal(err)
	}
	return out
}

func logEvent(t *testing.T, db *serverdb.SQLite, ev serverdb.Event) {
	t.Helper()
	if ev.Time.IsZero() {
		ev.Time = time.Now()
	}
	if err := db.LogEvent(context.Background(), ev); err != nil {
		t.Fatal(err)
	}
}

func mustVerify(t *testing.T, dir string, db Store) *VerifyReport {
	t.Helper()
	rep, err := Verify(context.Background(), dir, db)
	if err != nil || rep == nil || !rep.OK {
		t.Fatalf("Verify = %+v, %v; want an intact log", rep, err)
	}
	return rep
}

// Events in the database before and after Open all reach the log, once
// each, in order, beside the fleet's records; the kept head follows.
func TestTrailFeedsEventsAndRecords(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir, db, key := stateDir(t)
	logEvent(t, db, serverdb.Event{Client: "web1", Action: serverdb.ActionToken, Detail: "expires=x"})
	tr := openTrail(t, dir, db, key)
	if got := entries(t, dir); len(got) != 1 || got[0].Action != serverdb.ActionToken {
		t.Fatalf("after Open: %+v; want the pending token event", got)
	}
	logEvent(t, db, serverdb.Event{Client: "web1", Action: serverdb.ActionEnroll, Detail: "serial=ab"})
	logEvent(t, db, serverdb.Event{Client: "web\xff1", Action: serverdb.ActionEnrollRefused, Detail: strings.Repeat("é", 600)})
	if err := tr.Record(ctx, auditlog.Entry{Actor: auditlog.Actor{Name: "alice", Role: "operator"}, Action: "run-now", Target: "client:web1", Outcome: auditlog.OutcomeRefused}); err != nil {
		t.Fatal(err)
	}
	if err := tr.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	logEvent(t, db, serverdb.Event{Client: "web1", Action: serverdb.ActionRevoke, Detail: "stolen"})
	if err := tr.Close(ctx); err != nil {
		t.Fatal(err)
	}
	got := entries(t, dir)
	var actions []string
	for _, e := range got {
		actions = append(actions, e.Action)
	}
	// The record went in at once, the events at the Sync after it; Close
	// takes the last event and adds a checkpoint; CheckpointEvery 4 adds
	// one after the fourth entry.
	want := "token run-now enrol enrol-refused checkpoint revoke checkpoint"
	if strings.Join(actions, " ") != want {
		t.Fatalf("actions %q, want %q", strings.Join(actions, " "), want)
	}
	if e := got[3]; e.Outcome != auditlog.OutcomeRefused || e.Actor.Name != "web\uFFFD1" || len(e.Details[detailDetail]) > maxField+3 {
		t.Fatalf("refused enrollment entry %+v", e)
	}
	if e := got[5]; e.Actor != (auditlog.Actor{Name: ActorLocal, Role: RoleAdmin}) || e.Target != "client:web1" || e.Details[detailEvent] != "4" {
		t.Fatalf("revoke entry %+v", e)
	}
	rep := mustVerify(t, dir, db)
	kept, _ := db.AuditHead(ctx)
	if rep.HeadSeq != 7 || kept.Seq != 7 || kept.EventID != 4 || rep.PendingEvents != 0 {
		t.Fatalf("report %+v, kept %+v", rep, kept)
	}
	// Reopening appends nothing that is already there.
	tr = openTrail(t, dir, db, key)
	if err := tr.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if n := len(entries(t, dir)); n != 7 {
		t.Fatalf("%d entries after a reopen, want 7", n)
	}
}

// A crash between an append and storing its head: the next Open adopts the
// entry, records the repair, and does not append the event twice.
func TestTrailCrashBeforeHeadStored(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir, db, key := stateDir(t)
	tr := openTrail(t, dir, db, key)
	logEvent(t, db, serverdb.Event{Client: "web1", Action: serverdb.ActionEnroll})
	if err := tr.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	before, _ := db.AuditHead(ctx)
	logEvent(t, db, serverdb.Event{Client: "web1", Action: serverdb.ActionCreateRepo, Repo: "main"})
	if err := tr.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	// The crash: the log has the entry, the database the head before it.
	_ = tr.log.Abandon()
	if err := db.SetAuditHead(ctx, before); err != nil {
		t.Fatal(err)
	}
	if _, err := Verify(ctx, dir, db); !errors.Is(err, auditlog.ErrAheadOfHead) {
		t.Fatalf("Verify before the restart: %v, want ErrAheadOfHead", err)
	}
	tr = openTrail(t, dir, db, key)
	if err := tr.Close(ctx); err != nil {
		t.Fatal(err)
	}
	got := entries(t, dir)
	creates := 0
	for _, e := range got {
		if e.Action == serverdb.ActionCreateRepo {
			creates++
		}
	}
	if creates != 1 || got[2].Action != auditlog.ActionRepaired || got[2].Details["adopted"] != "2" {
		t.Fatalf("after the restart: %d create-repo entries, entry 3 %+v", creates, got[2])
	}
	mustVerify(t, dir, db)
}

// More than a crash leaves, or a log behind the head, and the trail does
// not open; the log is left as it was.
func TestTrailRefusesMismatch(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir, db, key := stateDir(t)
	tr := openTrail(t, dir, db, key)
	for _, a := range []string{"one", "two", "three"} {
		if err := tr.Record(ctx, auditlog.Entry{Actor: auditlog.Actor{Name: "alice", Role: "admin"}, Action: a, Outcome: auditlog.OutcomeOK}); err != nil {
			t.Fatal(err)
		}
	}
	_ = tr.log.Abandon()
	seg := filepath.Join(dir, state.AuditDir, "00000001.jsonl")
	data, err := os.ReadFile(seg)
	if err != nil {
		t.Fatal(err)
	}
	head, _ := db.AuditHead(ctx)
	for _, kept := range []serverdb.AuditHead{{Seq: 1}, {Seq: head.Seq + 1, Hash: head.Hash}} {
		if err := db.SetAuditHead(ctx, kept); err != nil {
			t.Fatal(err)
		}
		if _, err := Open(ctx, Options{Dir: dir, DB: db, Key: key, Logger: quiet}); !errors.Is(err, ErrHeadMismatch) || !strings.Contains(err.Error(), "coffer server audit verify") {
			t.Fatalf("Open with kept head %d: %v, want ErrHeadMismatch", kept.Seq, err)
		}
		if after, _ := os.ReadFile(seg); string(after) != string(data) {
			t.Fatal("a refused Open changed the log")
		}
	}
}

// Verify names the first bad entry of an edited or cut log; show's Scan
// filters by time.
func TestVerifyFindsTamperAndTruncation(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir, db, key := stateDir(t)
	tr := openTrail(t, dir, db, key)
	for i := range 3 {
		logEvent(t, db, serverdb.Event{Time: time.Date(2026, 12, 1+i, 0, 0, 0, 0, time.UTC), Client: "web1", Action: serverdb.ActionDelete, Object: "data/ab"})
	}
	if err := tr.Close(ctx); err != nil {
		t.Fatal(err)
	}
	seg := filepath.Join(dir, state.AuditDir, "00000001.jsonl")
	data, _ := os.ReadFile(seg)
	lines := strings.SplitAfter(string(data), "\n")
	lines = lines[:len(lines)-1]
	cases := []struct {
		name     string
		content  string
		kind     string
		seq      uint64
		sentinel error
	}{
		{"edit", strings.Replace(string(data), "data/ab", "data/xy", 1), "tampered", 1, auditlog.ErrTampered},
		{"cut the last", strings.Join(lines[:len(lines)-1], ""), "truncated", 4, auditlog.ErrTruncated},
	}
	for _, c := range cases {
		if err := os.WriteFile(seg, []byte(c.content), 0o600); err != nil {
			t.Fatal(err)
		}
		rep, err := Verify(ctx, dir, db)
		if !errors.Is(err, c.sentinel) || rep == nil || rep.OK || rep.Problem == nil || rep.Problem.Kind != c.kind || rep.Problem.Seq != c.seq || rep.Problem.File != "00000001.jsonl" {
			t.Errorf("%s: %+v %v; want %s at seq %d", c.name, rep, err, c.kind, c.seq)
		}
	}
	if err := os.WriteFile(seg, data, 0o600); err != nil {
		t.Fatal(err)
	}
	mustVerify(t, dir, db)
	n := 0
	since := time.Now().Add(-time.Hour) // entries carry the time they were appended
	if err := Scan(dir, since, func(auditlog.Entry) error { n++; return nil }); err != nil || n != 4 {
		t.Fatalf("Scan since an hour ago: %d entries, %v", n, err)
	}
	if err := Scan(dir, time.Now().Add(time.Hour), func(auditlog.Entry) error { n++; return nil }); err != nil || n != 4 {
		t.Fatalf("Scan from the future listed entries: %d, %v", n, err)
	}
}

// A server directory without a log yet verifies as empty.
func TestVerifyNoLogYet(t *testing.T) {
	t.Parallel()
	dir, db, _ := stateDir(t)
	rep := mustVerify(t, dir, db)
	if rep.Entries != 0 {
		t.Fatalf("%+v", rep)
	}
}

type blockingSink struct {
	release chan struct{}
	mu      sync.Mutex
	got     []uint64
}

func (s *blockingSink) Write(e auditlog.Entry) error {
	<-s.release
	s.mu.Lock()
	defer s.mu.Unlock()
	s.got = append(s.got, e.Seq)
	return nil
}

// A stuck sink never holds an append up: entries beyond its queue are
// dropped for it and counted.
func TestAsyncSinkNeverBlocks(t *testing.T) {
	t.Parallel()
	next := &blockingSink{release: make(chan struct{})}
	s := NewAsyncSink(next, 4, quiet)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 20 {
			_ = s.Write(auditlog.Entry{Seq: uint64(i + 1)})
		}
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Write blocked on a stuck sink")
	}
	close(next.release)
	s.Close()
	if s.Dropped() == 0 || uint64(len(next.got))+s.Dropped() != 20 {
		t.Fatalf("%d written, %d dropped; want 20 in all, some dropped", len(next.got), s.Dropped())
	}
}

// Entries reach a real syslog socket as RFC 5424 messages, and a syslog
// that is not there does not stop the trail.
func TestTrailToSyslog(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	dir, db, key := stateDir(t)
	conn, err := auditlog.NewSyslog("udp", pc.LocalAddr().String(), auditlog.SyslogOptions{Hostname: "vault"})
	if err != nil {
		t.Fatal(err)
	}
	down, err := auditlog.NewSyslog("unixgram", filepath.Join(t.TempDir(), "nobody"), auditlog.SyslogOptions{})
	if err != nil {
		t.Fatal(err)
	}
	up, gone := NewAsyncSink(conn, 0, quiet), NewAsyncSink(down, 0, quiet)
	tr, err := Open(ctx, Options{Dir: dir, DB: db, Key: key, Logger: quiet, Sinks: []auditlog.Sink{up, gone}})
	if err != nil {
		t.Fatal(err)
	}
	logEvent(t, db, serverdb.Event{Client: "web1", Action: serverdb.ActionDeleteRefused, Repo: "main", Object: "data/ab"})
	if err := tr.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	_ = pc.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, _, err := pc.ReadFrom(buf)
	if err != nil {
		t.Fatal(err)
	}
	msg := string(buf[:n])
	// Facility 13, severity 4 (a refusal): PRI 108.
	if !strings.HasPrefix(msg, "<108>1 ") || !strings.Contains(msg, " vault coffer ") || !strings.Contains(msg, " delete-refused - \ufeff{\"seq\":1,") {
		t.Fatalf("syslog message %q", msg)
	}
	if err := tr.Close(ctx); err != nil {
		t.Fatal(err)
	}
	up.Close()
	gone.Close()
	if gone.Failed() == 0 {
		t.Fatal("the missing syslog socket counted no failure")
	}
	mustVerify(t, dir, db)
}

// downStore is a Store whose head cannot be stored while down is set, as
// when PostgreSQL is away.
type downStore struct {
	Store
	mu   sync.Mutex
	down bool
}

func (d *downStore) set(down bool) { d.mu.Lock(); d.down = down; d.mu.Unlock() }

func (d *downStore) SwapAuditHead(ctx context.Context, old, h serverdb.AuditHead) error {
	d.mu.Lock()
	down := d.down
	d.mu.Unlock()
	if down {
		return serverdb.ErrUnavailable
	}
	return d.Store.SwapAuditHead(ctx, old, h)
}

// A record appended while its head cannot be stored leaves the log ahead
// of the kept head only until the database is back: the next Sync (every
// poll of Run) stores it, with no further entry needed.
func TestTrailStoresHeadAfterOutage(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir, db, key := stateDir(t)
	ds := &downStore{Store: db}
	tr := openTrail(t, dir, ds, key)
	defer func() { _ = tr.Close(ctx) }()
	ds.set(true)
	if err := tr.Record(ctx, auditlog.Entry{Actor: auditlog.Actor{Name: "alice", Role: "admin"}, Action: "run-now", Target: "client:web1", Outcome: auditlog.OutcomeOK}); err == nil {
		t.Fatal("Record while the head cannot be stored: nil error")
	}
	if _, err := Verify(ctx, dir, db); !errors.Is(err, auditlog.ErrAheadOfHead) {
		t.Fatalf("Verify during the outage: %v, want ErrAheadOfHead", err)
	}
	ds.set(false)
	if err := tr.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	mustVerify(t, dir, db)
}
