package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coffer-backup/coffer/internal/fleet/api"
	"github.com/coffer-backup/coffer/internal/pki"
)

// TestFleetUserCertificateRenews: a person's certificate past two thirds
// of its lifetime is renewed by the next fleet command, as a host's is by
// its next repository command: fleet whoami says so and shows the new
// expiry, the old certificate is refused, the renewal is audited.
func TestFleetUserCertificateRenews(t *testing.T) {
	t.Parallel()
	admin, person := newEnv(t), newEnv(t)
	dir := serverInit(t, admin, "srv")
	adminID := filepath.Join(dir, "admin")
	// One-minute certificates: with the five minutes they are backdated,
	// past two thirds of their lifetime from the start.
	cfgFile := filepath.Join(dir, "config.json")
	b, err := os.ReadFile(cfgFile)
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]json.RawMessage
	if err := json.Unmarshal(b, &cfg); err != nil {
		t.Fatal(err)
	}
	cfg["client_cert_ttl"] = json.RawMessage(`"1m"`)
	if b, err = json.Marshal(cfg); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfgFile, b, 0o600); err != nil {
		t.Fatal(err)
	}
	srv := startServer(t, dir, "127.0.0.1:0")
	id := enrollFleetUser(t, admin, person, srv, adminID, "aud1", "--role", "auditor")
	before, err := pki.LoadIdentity(id)
	if err != nil {
		t.Fatal(err)
	}

	so, se, code := fleetAs(person, srv, id, "whoami")
	if code != 0 || !strings.Contains(se, "renewed the certificate") || !strings.Contains(so, "certificate expires") {
		t.Fatalf("whoami: exit %d\nstdout: %s\nstderr: %s", code, so, se)
	}
	after, err := pki.LoadIdentity(id)
	if err != nil {
		t.Fatal(err)
	}
	if after.Cert.SerialNumber.Cmp(before.Cert.SerialNumber) == 0 || after.Cert.NotAfter.Before(before.Cert.NotAfter) {
		t.Fatalf("not renewed: serial %x -> %x, expiry %s -> %s", before.Cert.SerialNumber, after.Cert.SerialNumber, before.Cert.NotAfter, after.Cert.NotAfter)
	}
	var w fleetWhoAmIJSON
	if err := json.Unmarshal([]byte(mustFleet(person, srv, id, "whoami", "--json")), &w); err != nil || w.Name != "aud1" || w.CertExpires == "" {
		t.Fatalf("whoami --json: %+v %v", w, err)
	}
	if exp, err := time.Parse(time.RFC3339, w.CertExpires); err != nil || exp.Before(after.Cert.NotAfter.Add(-time.Second)) {
		t.Fatalf("whoami's expiry %q, the certificate's %s", w.CertExpires, after.Cert.NotAfter)
	}

	// The superseded certificate no longer gets in.
	stale := filepath.Join(person.dir, "stale")
	if err := pki.WriteIdentity(stale, mustRead(t, filepath.Join(id, "client.key")), pki.EncodeCertPEM(before.Cert.Raw), pki.EncodeCertPEM(before.CA.Raw)); err != nil {
		t.Fatal(err)
	}
	if _, se, code := fleetAs(person, srv, stale, "whoami"); code == 0 {
		t.Fatalf("the superseded certificate still works: %s", se)
	}
	if !within(5*time.Second, func() bool {
		_, ok := findEntry(fleetAudit(t, admin, srv, adminID), func(e api.AuditEntry) bool {
			return e.Action == "renew" && e.Target == "user:aud1"
		})
		return ok
	}) {
		t.Fatal("no renewal of aud1 in the audit log")
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
