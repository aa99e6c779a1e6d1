package main

import (
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coffer-backup/coffer/internal/alert/mailpittest"
	"github.com/coffer-backup/coffer/internal/auditlog"
	"github.com/coffer-backup/coffer/internal/serverdb"
)

// blackhole accepts connections and never answers: a webhook receiver
// that hangs every request until the sender's timeout.
func blackhole(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		<-done
		for _, c := range conns {
			_ = c.Close()
		}
	})
	return ln.Addr().String()
}

// TestFleetAlertsEndToEnd: a real server and a real SMTP server
// (mailpit). A host that never connects, with a backup every 10 s and a
// grace of 10 s, is mailed as missed within about 30 s, while a webhook
// that hangs every request gets the same alert without delaying the
// mail; alert test delivers at once; list shows no secret; an operator
// may not add a channel.
func TestFleetAlertsEndToEnd(t *testing.T) {
	t.Parallel()
	mp := mailpittest.Start(t, mailpittest.Options{})
	admin := newEnv(t)
	dir := serverInit(t, admin, "server")
	adminID := filepath.Join(dir, "admin")
	srv := startServer(t, dir, "127.0.0.1:0")
	web := newEnv(t)
	srv.enroll(admin, web, "web1") // its agent never runs

	secret := filepath.Join(admin.dir, "hook.key")
	writeFile(t, secret, []byte("0123456789abcdef-a-webhook-key\n"))
	if err := os.Chmod(secret, 0o644); err != nil {
		t.Fatal(err)
	}
	hook := []string{"alert", "add", "webhook", "--name", "hook", "--url", "http://" + blackhole(t) + "/alerts?token=q", "--secret-file", secret}
	if _, se, code := fleetAs(admin, srv, adminID, hook...); code != exitUsage || !strings.Contains(se, "chmod 600") {
		t.Fatalf("a secret file readable by others: exit %d: %s", code, se)
	}
	if err := os.Chmod(secret, 0o600); err != nil {
		t.Fatal(err)
	}
	mustFleet(admin, srv, adminID, hook...)
	mustFleet(admin, srv, adminID, "alert", "add", "email", "--name", "ops", "--smtp", mp.SMTP, "--from", "coffer@example.org", "--to", "ops@example.org")
	if _, se, code := fleetAs(admin, srv, adminID, "alert", "add", "email", "--name", "bad", "--smtp", mp.SMTP, "--from", "coffer", "--to", "ops@example.org"); code == 0 || !strings.Contains(se, "from") {
		t.Fatalf("a bad sender address: exit %d: %s", code, se)
	}

	t0 := time.Now()
	mustFleet(admin, srv, adminID, "policy", "set", "--client", "web1", "--paths", "/etc", "--schedule", "every 10s", "--grace", "10s")

	t.Run("alert test delivers at once", func(t *testing.T) {
		out := mustFleet(admin, srv, adminID, "alert", "test", "ops")
		if !strings.Contains(out, "delivered") {
			t.Fatalf("alert test: %s", out)
		}
		msgs := mp.Wait(t, 1, 10*time.Second)
		if !strings.Contains(msgs[0].Subject, "test") {
			t.Fatalf("test mail subject %q", msgs[0].Subject)
		}
		if _, se, code := fleetAs(admin, srv, adminID, "alert", "test", "nosuch"); code == 0 || !strings.Contains(se, "nosuch") {
			t.Fatalf("alert test of an unknown channel: exit %d: %s", code, se)
		}
	})

	t.Run("an operator may not add a channel", func(t *testing.T) {
		tok := strings.TrimSpace(mustFleet(admin, srv, adminID, "user", "add", "op1", "--role", "operator", "--scope", "client:web1"))
		op := newEnv(t)
		opID := filepath.Join(op.dir, "id")
		writeFile(t, filepath.Join(op.dir, "tok"), []byte(tok+"\n"))
		op.must("enroll", "--server", srv.addr, "--token-file", filepath.Join(op.dir, "tok"), "--identity", opID)
		_, se, code := op.run("fleet", "--identity", opID, "alert", "add", "syslog", "--name", "mine", "--address", "udp://127.0.0.1:514")
		if code != exitForbidden || !strings.Contains(se, `operator "op1"`) {
			t.Fatalf("alert add by an operator: exit %d, want %d: %s", code, exitForbidden, se)
		}
		if _, _, code := op.run("fleet", "--identity", opID, "alert", "list"); code != exitForbidden {
			t.Fatalf("alert list by an operator: exit %d", code)
		}
	})

	// The missed backup: mailed 20-40 s after the policy (the watch starts
	// at the next 10 s tick, cadence plus grace is 20 s, found at the next
	// tick after that), the
	// hanging webhook notwithstanding.
	missed, ok := mp.Find(t, 60*time.Second, func(m mailpittest.Message) bool {
		return strings.Contains(m.Subject, "missed") && strings.Contains(m.Subject, "web1")
	})
	if !ok {
		t.Fatalf("no missed-backup mail within 60 s; server log:\n%s", srv.logText())
	}
	t.Logf("missed-backup mail %q arrived %s after the policy was set", missed.Subject, time.Since(t0).Round(time.Millisecond))
	if !strings.Contains(missed.Text, "web1") || missed.To[0].Address != "ops@example.org" {
		t.Fatalf("missed mail: %+v", missed)
	}

	var list []fleetAlertJSON
	out := mustFleet(admin, srv, adminID, "alert", "list", "--json")
	if err := json.Unmarshal([]byte(out), &list); err != nil || len(list) != 2 {
		t.Fatalf("alert list: %v\n%s", err, out)
	}
	if h := list[0]; h.Name != "hook" || !h.HasSecret || strings.Contains(h.Target, "token") || h.Pending == 0 {
		t.Fatalf("hook in the list: %+v", h)
	}
	if strings.Contains(out, "a-webhook-key") || strings.Contains(out, "secret_file") {
		t.Fatalf("alert list shows a secret or a server path:\n%s", out)
	}
	if fi, err := os.Stat(filepath.Join(dir, "alerts", "hook.secret")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("the webhook's secret on the server: %v %v", fi, err)
	}
	if evs := srv.audited(admin, serverdb.ActionAlertChannel); len(evs) != 2 || evs[0].Actor != (auditlog.Actor{Name: "admin", Role: "admin"}) {
		t.Fatalf("channel changes audited: %+v", evs)
	}
	mustFleet(admin, srv, adminID, "alert", "remove", "hook")
	if _, err := os.Stat(filepath.Join(dir, "alerts", "hook.secret")); !os.IsNotExist(err) {
		t.Fatalf("the removed channel's secret is still there: %v", err)
	}
}
