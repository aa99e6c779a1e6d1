package alert_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/coffer-backup/coffer/internal/alert"
	"github.com/coffer-backup/coffer/internal/alert/mailpittest"
)

func emailChannel(t *testing.T, name string, s *mailpittest.Server, security string) alert.Channel {
	c := alert.Channel{Name: name, Kind: alert.Email, Email: &alert.EmailConfig{
		SMTP: s.SMTP, Security: security, CAFile: s.CAFile,
		From: "coffer <coffer@example.org>", To: []string{"ops@example.org", "oncall@example.org"},
	}}
	if s.Password != "" {
		c.Email.User = s.User
		c.Email.PasswordFile = secretFile(t, s.Password+"\n", 0o600)
	}
	return c
}

// A missed backup mails through a real SMTP server, upgraded with STARTTLS
// (the server offers it; the password is only sent over TLS), with
// "missed" and the host in the subject.
func TestMailMissedArrives(t *testing.T) {
	t.Parallel()
	s := mailpittest.Start(t, mailpittest.Options{TLS: mailpittest.StartTLS, Auth: true})
	store := newStore(t)
	d := startDispatcher(t, store, alert.Options{}, emailChannel(t, "ops", s, alert.SMTPOpportunistic))
	n, err := d.Enqueue(context.Background(), missed)
	if err != nil || n != 1 {
		t.Fatalf("Enqueue = %d, %v", n, err)
	}
	msgs := s.Wait(t, 1, 10*time.Second)
	m := msgs[0]
	if !strings.Contains(m.Subject, "missed") || !strings.Contains(m.Subject, "web1") {
		t.Fatalf("subject %q lacks \"missed\" or the host", m.Subject)
	}
	if m.From.Address != "coffer@example.org" || len(m.To) != 2 || m.To[1].Address != "oncall@example.org" {
		t.Fatalf("from %v to %v", m.From, m.To)
	}
	if !strings.Contains(m.Text, missed.Summary) || !strings.Contains(m.Text, "last_success: 2026-12-04T02:00:00Z") {
		t.Fatalf("body:\n%s", m.Text)
	}
	waitItems(t, store, "ops", 5*time.Second, allState(alert.Delivered))
}

// Implicit TLS (--tls) with a custom CA and auth.
func TestMailImplicitTLS(t *testing.T) {
	t.Parallel()
	s := mailpittest.Start(t, mailpittest.Options{TLS: mailpittest.Implicit, Auth: true})
	d := startDispatcher(t, newStore(t), alert.Options{}, emailChannel(t, "tls", s, alert.SMTPImplicitTLS))
	if err := d.Test(context.Background(), "tls"); err != nil {
		t.Fatal(err)
	}
	if m := s.Wait(t, 1, 5*time.Second)[0]; !strings.Contains(m.Subject, "test alert") {
		t.Fatalf("subject %q", m.Subject)
	}
	// The server's certificate is checked: without its CA, nothing is sent.
	c := emailChannel(t, "noca", s, alert.SMTPImplicitTLS)
	c.Email.CAFile = ""
	d2 := startDispatcher(t, newStore(t), alert.Options{Timeout: 5 * time.Second}, c)
	if err := d2.Test(context.Background(), "noca"); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("unknown CA: %v", err)
	}
}

// --starttls against a server that does not offer STARTTLS: a clear error,
// no mail.
func TestMailStartTLSRequiredNotOffered(t *testing.T) {
	t.Parallel()
	s := mailpittest.Start(t, mailpittest.Options{})
	d := startDispatcher(t, newStore(t), alert.Options{}, emailChannel(t, "strict", s, alert.SMTPStartTLS))
	err := d.Test(context.Background(), "strict")
	if err == nil || !strings.Contains(err.Error(), "does not support STARTTLS") || !errors.Is(err, alert.ErrDelivery) {
		t.Fatalf("Test = %v, want a STARTTLS error", err)
	}
	if msgs := s.Messages(t); len(msgs) != 0 {
		t.Fatalf("%d messages sent without the required STARTTLS", len(msgs))
	}
}

// A server that offers AUTH without TLS gets no password, not even on
// loopback, and no mail.
func TestMailAuthWithoutTLSRefused(t *testing.T) {
	t.Parallel()
	s := mailpittest.Start(t, mailpittest.Options{InsecureAuth: true})
	c := emailChannel(t, "cleartext", s, alert.SMTPOpportunistic)
	c.Email.User = "alerts"
	c.Email.PasswordFile = secretFile(t, "hunter2-password", 0o600)
	d := startDispatcher(t, newStore(t), alert.Options{}, c)
	err := d.Test(context.Background(), "cleartext")
	if !errors.Is(err, alert.ErrInsecure) || !strings.Contains(err.Error(), "not encrypted") {
		t.Fatalf("Test = %v, want ErrInsecure", err)
	}
	if strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("the error shows the password: %v", err)
	}
	if msgs := s.Messages(t); len(msgs) != 0 {
		t.Fatalf("%d messages sent", len(msgs))
	}
	// Without credentials the same server takes mail in the clear: the
	// refusal is about the password only.
	c.Name, c.Email.User, c.Email.PasswordFile = "anon", "", ""
	d2 := startDispatcher(t, newStore(t), alert.Options{}, c)
	if err := d2.Test(context.Background(), "anon"); err != nil {
		t.Fatal(err)
	}
	s.Wait(t, 1, 5*time.Second)
}

// blackhole accepts connections and never answers.
func blackhole(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				_ = c.Close()
			}
		}()
		for {
			c, err := l.Accept()
			if err != nil {
				<-done
				return
			}
			conns = append(conns, c)
		}
	}()
	t.Cleanup(func() { _ = l.Close(); close(done) })
	return l.Addr().String()
}

// closedPort returns an address nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	return addr
}

// An unreachable SMTP server is retried with backoff until it is given
// up, and neither it nor one that hangs delays the mail of another channel
// or the caller of Enqueue.
func TestMailUnreachableRetriedNotBlocking(t *testing.T) {
	t.Parallel()
	s := mailpittest.Start(t, mailpittest.Options{TLS: mailpittest.StartTLS})
	store := newStore(t)
	var rec attempts
	refused := emailChannel(t, "refused", s, alert.SMTPOpportunistic)
	refused.Email.SMTP = closedPort(t)
	hangs := emailChannel(t, "hangs", s, alert.SMTPOpportunistic)
	hangs.Email.SMTP = blackhole(t)
	// The hanging channel's timeout is long, so that the good channel's mail
	// arriving first proves it was not held up even on a loaded machine.
	opts := alert.Options{InitialInterval: 200 * time.Millisecond, Factor: 2, MaxAttempts: 3, Timeout: 10 * time.Second, OnAttempt: rec.record}
	d := startDispatcher(t, store, opts, refused, hangs, emailChannel(t, "ok", s, alert.SMTPOpportunistic))
	start := time.Now()
	n, err := d.Enqueue(context.Background(), missed)
	if err != nil || n != 3 {
		t.Fatalf("Enqueue = %d, %v", n, err)
	}
	if el := time.Since(start); el > time.Second {
		t.Fatalf("Enqueue took %v", el)
	}
	s.Wait(t, 1, 10*time.Second)
	if el := time.Since(start); el >= opts.Timeout {
		t.Fatalf("the good channel's mail took %v, as long as the hanging channel's timeout", el)
	}
	if got := rec.of("hangs"); len(got) != 0 {
		t.Fatalf("the hanging channel finished an attempt already: %+v", got)
	}
	items := waitItems(t, store, "refused", 10*time.Second, allState(alert.Dead))
	if items[0].Attempts != 3 || !strings.Contains(items[0].LastError, "refused") {
		t.Fatalf("dead item %+v", items[0])
	}
	got := rec.of("refused")
	if len(got) != 3 || !got[2].Dead || got[0].Dead {
		t.Fatalf("attempts %+v", got)
	}
	for i, want := range []time.Duration{200 * time.Millisecond, 400 * time.Millisecond} {
		if gap := got[i+1].At.Sub(got[i].At); gap < want {
			t.Fatalf("attempt %d came %v after the previous, want at least %v", i+2, gap, want)
		}
		if !got[i].Next.Equal(got[i].At.Add(want)) {
			t.Fatalf("attempt %d: next %v, want %v after %v", i+1, got[i].Next, want, got[i].At)
		}
	}
}
