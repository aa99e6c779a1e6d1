package admin_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

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

// A refusal that merely claims to be a self-scan (a name no scan
// recorded) is counted.
func TestTLSReportCountsForgedSelfScans(t *testing.T) {
	db := openDB(t)
	now := time.Now()
	ctx := context.Background()
	if err := db.LogEvent(ctx, serverdb.Event{Time: now, Action: serverdb.ActionSelfScan, Detail: "sabc.self-scan.coffer.invalid"}); err != nil {
		t.Fatal(err)
	}
	for _, sni := range []string{"sabc.self-scan.coffer.invalid", "sforged.self-scan.coffer.invalid", ""} {
		r := tlspolicy.RefusalRecord{Time: now, Peer: "192.0.2.1:5000", Kind: tlspolicy.KindVersion, SNI: sni, OfferedVersions: []string{"TLS 1.0"}}
		if err := db.LogRefusal(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	adm := &admin.Admin{DB: db, Settings: state.Settings{Policy: tlspolicy.Default()}, Now: time.Now}
	rep, err := adm.TLSReport(ctx, 3)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Days) != 3 || rep.SelfScanExcluded != 1 || rep.Days[2].Refused != 2 {
		t.Fatalf("report %+v", rep)
	}
	if ins := rep.Days[2].Insecure; len(ins) != 1 || ins[0].Peer != "192.0.2.1" || ins[0].Versions[0] != "TLS 1.0" {
		t.Fatalf("insecure attempts %+v", ins)
	}
	if _, err := adm.TLSReport(ctx, 0); err == nil {
		t.Fatal("zero days accepted")
	}
}
