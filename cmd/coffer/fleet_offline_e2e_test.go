package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coffer-backup/coffer/internal/alert/mailpittest"
)

// TestAgentOfflineAlert: a real agent connected to a real server run with
// --offline-after 10s is killed; the agent-offline alert reaches a real
// SMTP server (mailpit) naming the host, once.
func TestAgentOfflineAlert(t *testing.T) {
	t.Parallel()
	mp := mailpittest.Start(t, mailpittest.Options{})
	admin := newEnv(t)
	dir := serverInit(t, admin, "server")
	adminID := filepath.Join(dir, "admin")
	srv := startServer(t, dir, "127.0.0.1:0", "--offline-after", "10s")
	// Refused before anything (after it, the running server's lock would
	// refuse it too, so it cannot hang).
	if _, se, code := admin.run("server", "run", "--dir", dir, "--offline-after", "5s"); code != exitUsage || !strings.Contains(se, "--offline-after") {
		t.Fatalf("--offline-after 5s: exit %d: %s", code, se)
	}
	mustFleet(admin, srv, adminID, "alert", "add", "email", "--name", "ops", "--smtp", mp.SMTP, "--from", "coffer@example.org",
		"--to", "ops@example.org", "--events", "agent-offline")

	host := newEnv(t)
	src := filepath.Join(host.dir, "src")
	writeFile(t, filepath.Join(src, "a"), []byte("x"))
	mustFleet(admin, srv, adminID, "policy", "set", "--client", "web1", "--paths", src, "--schedule", "@daily")
	hostID := filepath.Join(host.dir, "agent-id")
	tokFile := filepath.Join(host.dir, "web1.token")
	writeFile(t, tokFile, []byte(srv.token(admin, "web1")+"\n"))
	host.must("enroll", "--server", srv.addr, "--token-file", tokFile, "--identity", hostID)
	ag := startAgentProc(t, host, "--identity", hostID)
	online := func() bool {
		var st []fleetHostJSON
		return json.Unmarshal([]byte(mustFleet(admin, srv, adminID, "status", "--json")), &st) == nil && len(st) == 1 && st[0].Online
	}
	if !within(15*time.Second, online) {
		t.Fatalf("the agent never came online\nagent log:\n%s", ag.logText())
	}

	_ = ag.cmd.Process.Signal(syscall.SIGKILL)
	<-ag.done
	killed := time.Now()
	if !within(5*time.Second, func() bool { return !online() }) {
		t.Fatal("fleet status shows the killed agent online")
	}
	// Seen online at most one 10 s watch tick before the kill, offline
	// after 10 s more, raised at the tick after that: 30 s at worst.
	got, ok := mp.Find(t, 40*time.Second, func(m mailpittest.Message) bool {
		return strings.Contains(m.Subject, "offline") && strings.Contains(m.Subject, "web1")
	})
	if !ok {
		t.Fatalf("no agent-offline mail within 40 s of the kill; server log:\n%s", srv.logText())
	}
	t.Logf("agent-offline mail %q arrived %s after the kill", got.Subject, time.Since(killed).Round(time.Millisecond))
	if !strings.Contains(got.Text, "web1") || len(got.To) != 1 || got.To[0].Address != "ops@example.org" {
		t.Fatalf("mail %+v", got)
	}
	// Once per absence.
	time.Sleep(11 * time.Second)
	n := 0
	for _, m := range mp.Messages(t) {
		if strings.Contains(m.Subject, "offline") {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("%d agent-offline mails for one absence", n)
	}
}
