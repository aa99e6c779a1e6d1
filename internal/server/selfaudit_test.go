package server_test

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coffer-backup/coffer/internal/pki"
	"github.com/coffer-backup/coffer/internal/server"
	"github.com/coffer-backup/coffer/internal/server/admin"
	"github.com/coffer-backup/coffer/internal/server/state"
	"github.com/coffer-backup/coffer/internal/serverdb"
	"github.com/coffer-backup/coffer/internal/tlspolicy"
)

func openDB(t *testing.T) *serverdb.SQLite {
	t.Helper()
	db, err := serverdb.Open(context.Background(), filepath.Join(t.TempDir(), serverdb.DefaultFile))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

func eventsOf(t *testing.T, db serverdb.DB, action string) []serverdb.Event {
	t.Helper()
	evs, err := db.Events(context.Background(), time.Time{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	var out []serverdb.Event
	for _, e := range evs {
		if e.Action == action {
			out = append(out, e)
		}
	}
	return out
}

func TestSelfAuditPassesOnCofferPolicy(t *testing.T) {
	env := start(t, server.Config{})
	audit := &server.SelfAudit{Addr: env.Addr, Policy: env.Policy, DB: env.DB, Logger: slog.New(slog.DiscardHandler)}
	rep, ok := audit.Once(context.Background())
	if !ok || rep == nil || !rep.Pass {
		t.Fatalf("coffer's own listener failed its self-audit: %+v", rep)
	}
	if n := len(eventsOf(t, env.DB, serverdb.ActionAlert)); n != 0 {
		t.Fatalf("%d alerts", n)
	}
	scans := eventsOf(t, env.DB, serverdb.ActionSelfScan)
	if len(scans) != 1 || !strings.HasSuffix(scans[0].Detail, ".self-scan.coffer.invalid") {
		t.Fatalf("scan not recorded: %+v", scans)
	}
	// Its refused probes carry the recorded name, so reports can skip them.
	// The listener records refusals after the scan's handshakes fail, so
	// wait until their number stops growing before comparing with a report.
	var recs []tlspolicy.RefusalRecord
	for deadline, last := time.Now().Add(3*time.Second), -1; time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		var err error
		recs, err = env.DB.Refusals(context.Background(), time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) == last {
			break
		}
		last = len(recs)
	}
	tagged := 0
	for _, r := range recs {
		if r.SNI == scans[0].Detail {
			tagged++
		}
	}
	if tagged == 0 {
		t.Fatal("the scan's refused handshakes are not tagged with its name")
	}
	adm := &admin.Admin{Dir: env.Dir, DB: env.DB, Settings: state.Settings{Policy: env.Policy}, Now: time.Now}
	rep2, err := adm.TLSReport(context.Background(), 1)
	if err != nil {
		t.Fatal(err)
	}
	if rep2.SelfScanExcluded != tagged || rep2.Days[0].Refused != len(recs)-tagged {
		t.Fatalf("report: excluded %d of %d tagged; counted %d of %d", rep2.SelfScanExcluded, tagged, rep2.Days[0].Refused, len(recs))
	}
}

// A port that accepts TLS 1.0 and CBC suites is weaker than the policy:
// the self-audit alerts.
func TestSelfAuditAlertsOnWeakPort(t *testing.T) {
	ca, err := pki.NewCA("weak CA", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	kp, err := ca.IssueServer([]string{"127.0.0.1"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	var suites []uint16
	for _, s := range append(tls.CipherSuites(), tls.InsecureCipherSuites()...) {
		suites = append(suites, s.ID)
	}
	// #nosec G402 -- deliberately weak: the server under audit.
	conf := &tls.Config{MinVersion: tls.VersionTLS10, CipherSuites: suites, Certificates: []tls.Certificate{kp.TLSCertificate(ca.Cert)}}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", conf)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				_ = c.(*tls.Conn).Handshake()
				_ = c.Close()
			}()
		}
	}()
	db := openDB(t)
	audit := &server.SelfAudit{Addr: ln.Addr().String(), Policy: tlspolicy.Default(), DB: db, Logger: slog.New(slog.DiscardHandler)}
	if _, ok := audit.Once(context.Background()); ok {
		t.Fatal("a port offering TLS 1.0 passed the self-audit")
	}
	alerts := eventsOf(t, db, serverdb.ActionAlert)
	if len(alerts) != 1 || !strings.Contains(alerts[0].Detail, "TLS 1.0") {
		t.Fatalf("alerts %+v", alerts)
	}

	// A port that does not answer is alerted too.
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := dead.Addr().String()
	dead.Close()
	audit.Addr = addr
	if _, ok := audit.Once(context.Background()); ok {
		t.Fatal("an unreachable port passed")
	}
	if n := len(eventsOf(t, db, serverdb.ActionAlert)); n != 2 {
		t.Fatalf("%d alerts", n)
	}
}
