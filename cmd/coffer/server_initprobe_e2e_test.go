package main

import (
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coffer-backup/coffer/internal/pki"
	"github.com/coffer-backup/coffer/internal/tlspolicy"
)

// TestServerInitIsNoRefusal: `coffer init` on a coffer:// repository first
// asks whether one exists. That is an ordinary request from an enrolled
// client answered "not found": the server must neither log it as a refused
// request nor record a refusal (issue 11).
func TestServerInitIsNoRefusal(t *testing.T) {
	t.Parallel()
	admin := newEnv(t)
	srv := startServer(t, serverInit(t, admin, "server"), "127.0.0.1:0")
	alice := newEnv(t)
	srv.enroll(admin, alice, "alice")
	alice.must(append([]string{"init", "--repo", srv.url("fresh")}, cheapKDF...)...)
	alice.must("snapshots", "--repo", srv.url("fresh"))
	// A refused request is logged as it ends; give a late line time to come.
	time.Sleep(200 * time.Millisecond)
	if log := srv.logText(); strings.Contains(log, "request refused") {
		t.Errorf("init was logged as a refused request:\n%s", log)
	}
	var got []tlspolicy.RefusalRecord
	for _, r := range srv.refusals() {
		if !strings.HasSuffix(r.SNI, ".self-scan.coffer.invalid") { // the server's own audit at start
			got = append(got, r)
		}
	}
	if len(got) != 0 {
		t.Errorf("init left %d refusal records: %+v", len(got), got)
	}
	// The check can fail: a request that is refused is still logged.
	id, err := pki.LoadIdentity(filepath.Join(alice.dir, ".config", "coffer", "identity"))
	if err != nil {
		t.Fatal(err)
	}
	if status, body, err := rawRequest(t, srv.addr, id, "GET /v1/repos/fresh/bogus/x HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil || status != http.StatusBadRequest {
		t.Fatalf("unknown object kind: %d %s %v", status, body, err)
	}
	if !within(5*time.Second, func() bool { return strings.Contains(srv.logText(), "request refused") }) {
		t.Errorf("a refused request was not logged:\n%s", srv.logText())
	}
}
