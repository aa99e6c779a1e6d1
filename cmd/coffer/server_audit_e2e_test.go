package main

import (
	"context"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coffer-backup/coffer/internal/auditlog"
	"github.com/coffer-backup/coffer/internal/server/audit"
	"github.com/coffer-backup/coffer/internal/serverdb"
)

// auditEntries lists the audit log with `server audit show --json`, each
// entry checked against its documented shape.
func auditEntries(t *testing.T, e *env, dir string, extra ...string) []auditlog.Entry {
	t.Helper()
	out := e.must(append([]string{"server", "audit", "show", "--dir", dir, "--json"}, extra...)...)
	requireArray(t, "server audit show", out, func() any { return &auditlog.Entry{} })
	var entries []auditlog.Entry
	if err := json.Unmarshal([]byte(out), &entries); err != nil {
		t.Fatalf("server audit show --json: %v\n%s", err, out)
	}
	return entries
}

// auditActions lists the entries' actions, leaving out the TLS self-scans
// the server runs at start whenever they come.
func auditActions(entries []auditlog.Entry) string {
	var a []string
	for _, e := range entries {
		if e.Action != serverdb.ActionSelfScan {
			a = append(a, e.Action)
		}
	}
	return strings.Join(a, " ")
}

// findAction returns the last entry of action.
func findAction(t *testing.T, entries []auditlog.Entry, action string) auditlog.Entry {
	t.Helper()
	for i := len(entries) - 1; i >= 0; i-- {
		if entries[i].Action == action {
			return entries[i]
		}
	}
	t.Fatalf("no %s entry in %q", action, auditActions(entries))
	return auditlog.Entry{}
}

// auditVerify runs `server audit verify --json`, checks its shape
// (docs/json.md) and returns its report, stderr and exit code.
func auditVerify(t *testing.T, e *env, dir string) (audit.VerifyReport, string, int) {
	t.Helper()
	out, stderr, code := e.run("server", "audit", "verify", "--dir", dir, "--json")
	var rep audit.VerifyReport
	requireFields(t, "server audit verify: "+stderr, out, &rep)
	return rep, stderr, code
}

// TestServerAuditLog: a real server records an enrollment and a revocation
// in its audit log (and sends them to syslog); verify passes; an edited
// byte, a deleted line, two swapped lines and a cut-off last entry each
// fail verify naming the first bad entry; a partial line and an entry
// whose head was never stored, as crashes leave, are repaired at the next
// start.
func TestServerAuditLog(t *testing.T) {
	t.Parallel()
	admin, client := newEnv(t), newEnv(t)
	dir := serverInit(t, admin, "srv")
	if _, err := os.Stat(filepath.Join(dir, "audit.key")); err != nil {
		t.Fatalf("server init made no audit key: %v", err)
	}
	syslog, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer syslog.Close()
	s := startServer(t, dir, "127.0.0.1:0", "--audit-syslog", "udp:"+syslog.LocalAddr().String())
	s.enroll(admin, client, "web1")
	admin.must("server", "revoke", "--dir", dir, "--client", "web1", "--reason", "laptop stolen")

	var entries []auditlog.Entry
	if !within(10*time.Second, func() bool {
		entries = auditEntries(t, admin, dir)
		// server init recorded the first administrator before them.
		return strings.HasSuffix(auditActions(entries), "token enrol revoke")
	}) {
		t.Fatalf("audit log holds %q, want token, enrol and revoke:\n%s", auditActions(entries), s.logText())
	}
	if e := findAction(t, entries, "revoke"); e.Actor.Role != "admin" || e.Target != "client:web1" || e.Details["detail"] != "laptop stolen" {
		t.Fatalf("revoke entry %+v", e)
	}
	if e := findAction(t, entries, "enrol"); e.Actor != (auditlog.Actor{Name: "web1", Role: "host"}) || !strings.HasPrefix(e.Details["detail"], "serial=") {
		t.Fatalf("enrol entry %+v", e)
	}
	// Verify passes while the server runs.
	if rep, stderr, code := auditVerify(t, admin, dir); code != 0 || !rep.OK || rep.Entries < 3 {
		t.Fatalf("verify of a running server's log: exit %d, %+v\n%s", code, rep, stderr)
	}
	// Each entry went to syslog as an RFC 5424 message.
	buf := make([]byte, 8192)
	_ = syslog.SetReadDeadline(time.Now().Add(5 * time.Second))
	var sent []string
	for !strings.HasSuffix(strings.Join(sent, " "), "revoke") {
		n, _, err := syslog.ReadFrom(buf)
		if err != nil || !strings.HasPrefix(string(buf[:n]), "<109>1 ") {
			t.Fatalf("syslog message %q (%v), want an RFC 5424 notice of facility 13", buf[:n], err)
		}
		if f := strings.Fields(string(buf[:n])); f[5] != serverdb.ActionSelfScan {
			sent = append(sent, f[5])
		}
	}
	if !strings.HasSuffix(strings.Join(sent, " "), "token enrol revoke") {
		t.Fatalf("syslog received %q", sent)
	}

	s.stop()
	all := auditEntries(t, admin, dir)
	out := admin.must("server", "audit", "verify", "--dir", dir)
	if want := "audit log intact: " + strconv.Itoa(len(all)) + " entries"; !strings.Contains(out, want) || all[len(all)-1].Action != auditlog.ActionCheckpoint {
		t.Fatalf("verify after a clean stop (which adds a checkpoint): %s, want %q", out, want)
	}
	if got := auditEntries(t, admin, dir, "--since", "1h"); len(got) != len(all) {
		t.Fatalf("show --since 1h: %q", auditActions(got))
	}
	if got := auditEntries(t, admin, dir, "--since", time.Now().Add(time.Hour).UTC().Format(time.RFC3339)); len(got) != 0 {
		t.Fatalf("show --since an hour ahead: %q", auditActions(got))
	}
	tamperAuditLog(t, admin, dir)
	crashAuditLog(t, admin, dir)
}

// tamperAuditLog edits, deletes, swaps and cuts lines of the stopped
// server's log; each fails verify with exit 21 naming the first bad entry.
func tamperAuditLog(t *testing.T, admin *env, dir string) {
	seg := filepath.Join(dir, "audit", "00000001.jsonl")
	orig, err := os.ReadFile(seg)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(string(orig), "\n")
	lines = lines[:len(lines)-1]
	n := len(lines)
	rest := strings.Join(lines[3:], "")
	// One byte of line 2: its year.
	edited := strings.Replace(lines[1], `"time":"2026`, `"time":"2027`, 1)
	if edited == lines[1] {
		t.Fatalf("line 2 has no time to edit: %s", lines[1])
	}
	cases := []struct {
		name, content, where, kind string
	}{
		{"edit a byte", lines[0] + edited + lines[2] + rest, "00000001.jsonl line 2 (seq 2)", "tampered"},
		{"delete a line", lines[0] + lines[2] + rest, "00000001.jsonl line 2 (seq 3)", "tampered"},
		{"swap two lines", lines[0] + lines[2] + lines[1] + rest, "00000001.jsonl line 2 (seq 3)", "tampered"},
		{"cut the last entry", strings.Join(lines[:n-1], ""), "00000001.jsonl line " + strconv.Itoa(n) + " (seq " + strconv.Itoa(n) + ")", "truncated"},
	}
	for _, c := range cases {
		if err := os.WriteFile(seg, []byte(c.content), 0o600); err != nil {
			t.Fatal(err)
		}
		_, stderr, code := admin.run("server", "audit", "verify", "--dir", dir)
		if code != 21 || !strings.Contains(stderr, c.where) {
			t.Errorf("%s: exit %d, stderr %q; want 21 naming %q", c.name, code, stderr, c.where)
		}
		rep, _, code := auditVerify(t, admin, dir)
		if code != 21 || rep.OK || rep.Problem == nil || rep.Problem.Kind != c.kind {
			t.Errorf("%s --json: exit %d, %+v; want 21 and a %s problem", c.name, code, rep, c.kind)
		}
	}
	if err := os.WriteFile(seg, orig, 0o600); err != nil {
		t.Fatal(err)
	}
	admin.must("server", "audit", "verify", "--dir", dir)
}

// crashAuditLog leaves what crashes leave, a partial last line and an
// entry whose head was not stored, and kills a server while it appends;
// each restart repairs the log and verify passes.
func crashAuditLog(t *testing.T, admin *env, dir string) {
	seg := filepath.Join(dir, "audit", "00000001.jsonl")
	before := len(auditEntries(t, admin, dir))
	f, err := os.OpenFile(seg, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(`{"seq":5,"time":"2026-`); err != nil {
		t.Fatal(err)
	}
	_ = f.Close()
	if _, stderr, code := admin.run("server", "audit", "verify", "--dir", dir); code != 21 || !strings.Contains(stderr, "partial line") {
		t.Fatalf("verify with a partial line: exit %d %s", code, stderr)
	}
	s := startServer(t, dir, "127.0.0.1:0")
	s.stop()
	entries := auditEntries(t, admin, dir)
	if e := entries[before]; e.Action != auditlog.ActionRepaired || e.Details["bytes"] != "22" {
		t.Fatalf("entry %d after a restart over a partial line: %+v", before+1, e)
	}
	admin.must("server", "audit", "verify", "--dir", dir)

	// The head of the last entry was never stored.
	db, err := serverdb.Open(context.Background(), filepath.Join(dir, serverdb.DefaultFile))
	if err != nil {
		t.Fatal(err)
	}
	prev := entries[len(entries)-2]
	kept, _ := db.AuditHead(context.Background())
	if err := db.SetAuditHead(context.Background(), serverdb.AuditHead{Seq: prev.Seq, Hash: prev.Hash, EventID: kept.EventID}); err != nil {
		t.Fatal(err)
	}
	if rep, _, code := auditVerify(t, admin, dir); code != 21 || rep.Problem == nil || rep.Problem.Kind != "ahead-of-head" {
		t.Fatalf("verify with the head one behind: exit %d %+v", code, rep)
	}
	s = startServer(t, dir, "127.0.0.1:0")
	s.stop()
	admin.must("server", "audit", "verify", "--dir", dir)
	got := auditEntries(t, admin, dir)
	if e := got[len(entries)]; e.Action != auditlog.ActionRepaired || e.Details["adopted"] != strconv.FormatUint(entries[len(entries)-1].Seq, 10) {
		t.Fatalf("entry after the restart %+v; want a log-repaired entry adopting seq %d", e, entries[len(entries)-1].Seq)
	}

	// kill -9 while the server appends a flood of events: it takes them
	// from the database as they come.
	const flood = 200
	s = startServer(t, dir, "127.0.0.1:0")
	for i := range flood {
		if err := db.LogEvent(context.Background(), serverdb.Event{Time: time.Now(), Client: "web" + strconv.Itoa(i), Action: serverdb.ActionToken}); err != nil {
			t.Fatal(err)
		}
		if i == flood/2 {
			s.kill()
		}
	}
	_ = db.Close()
	start := time.Now()
	s = startServer(t, dir, "127.0.0.1:0")
	t.Logf("restart appended the events the killed server left in %v", time.Since(start).Round(time.Millisecond))
	if !within(30*time.Second, func() bool {
		rep, _, code := auditVerify(t, admin, dir)
		return code == 0 && rep.PendingEvents == 0
	}) {
		rep, stderr, code := auditVerify(t, admin, dir)
		t.Fatalf("after kill -9 and a restart: exit %d %+v %s\n%s", code, rep, stderr, s.logText())
	}
	s.stop()
	admin.must("server", "audit", "verify", "--dir", dir)
	seen := map[string]int{}
	for _, e := range auditEntries(t, admin, dir) {
		if e.Action == serverdb.ActionToken && strings.HasPrefix(e.Target, "client:web") && e.Target != "client:web1" {
			seen[e.Target]++
		}
	}
	for i := range flood {
		if n := seen["client:web"+strconv.Itoa(i)]; n != 1 && i != 1 {
			t.Fatalf("event for web%d appended %d times, want once", i, n)
		}
	}
}
