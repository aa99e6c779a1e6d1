package main

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coffer-backup/coffer/internal/alert/mailpittest"
	"github.com/coffer-backup/coffer/internal/storage/s3/s3test"
)

// TestReplicationLagAlert: a target added with --alert-lag 2s that has
// not been replicated to raises replication-lag when the running server
// looks (at its start, then every 10 minutes), and the mail reaches a
// real SMTP server (mailpit) naming the target and its threshold; a
// target without --alert-lag (default 24 h) raises none.
func TestReplicationLagAlert(t *testing.T) {
	t.Parallel()
	mp := mailpittest.Start(t, mailpittest.Options{})
	bucket := s3test.Start(t)
	admin := newEnv(t)
	admin.extra = bucket.Env()
	p, _, _ := primaryWithBackup(t, admin, map[string][]byte{"a.txt": []byte("lagging\n")})
	adminID := filepath.Join(p.dir, "admin")
	mustFleet(admin, p, adminID, "alert", "add", "email", "--name", "ops", "--smtp", mp.SMTP, "--from", "coffer@example.org",
		"--to", "ops@example.org", "--events", "replication-lag")
	admin.must("server", "replicate", "add", "--dir", p.dir, "--name", "behind", "--to", bucket.URL("lag-one", ""), "--alert-lag", "2s")
	admin.must("server", "replicate", "add", "--dir", p.dir, "--name", "relaxed", "--to", bucket.URL("lag-two", ""))
	time.Sleep(3 * time.Second) // the backup's objects are now older than 2 s
	p.kill()
	p = startServer(t, p.dir, "127.0.0.1:0")

	var subjects []string
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		subjects = subjects[:0]
		for _, m := range mp.Messages(t) {
			subjects = append(subjects, m.Subject)
			if strings.Contains(m.Subject, "replication lag") && !strings.Contains(m.Text, "behind (threshold 2s)") {
				t.Fatalf("mail %q: %s", m.Subject, m.Text)
			}
		}
		if len(subjects) > 0 {
			break
		}
	}
	if len(subjects) != 1 || !strings.Contains(subjects[0], "replication lag") {
		t.Fatalf("mails %q, want one replication-lag; server log:\n%s", subjects, p.logText())
	}
	time.Sleep(2 * time.Second)
	if n := len(mp.Messages(t)); n != 1 {
		t.Fatalf("%d mails: the target without --alert-lag raised one, or the alert was repeated", n)
	}
}
