package alert

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strconv"
	"time"

	mail "github.com/wneessen/go-mail"
	"github.com/wneessen/go-mail/smtp"
)

// sendMail delivers events as one plain-text mail. The TLS mode follows
// cfg.Security; a password is only ever sent over TLS (tlsOnlyAuth).
func sendMail(ctx context.Context, cfg *EmailConfig, events []Event, timeout time.Duration) error {
	addr, err := cfg.addr()
	if err != nil {
		return err
	}
	host, portText, _ := net.SplitHostPort(addr)
	port, _ := strconv.Atoi(portText)
	tc, err := tlsConfig(host, cfg.CAFile)
	if err != nil {
		return err
	}
	opts := []mail.Option{mail.WithPort(port), mail.WithTimeout(timeout), mail.WithTLSConfig(tc)}
	switch cfg.Security {
	case SMTPImplicitTLS:
		opts = append(opts, mail.WithSSL())
	case SMTPStartTLS:
		opts = append(opts, mail.WithTLSPolicy(mail.TLSMandatory))
	default:
		opts = append(opts, mail.WithTLSPolicy(mail.TLSOpportunistic))
	}
	if cfg.User != "" {
		password, err := readSecret(cfg.PasswordFile, 1)
		if err != nil {
			return err
		}
		opts = append(opts, mail.WithSMTPAuthCustom(&tlsOnlyAuth{user: cfg.User, password: string(password), host: host}))
	}
	client, err := mail.NewClient(host, opts...)
	if err != nil {
		return fmt.Errorf("smtp %s: %w", addr, err)
	}
	msg := mail.NewMsg()
	if err := msg.From(cfg.From); err != nil {
		return fmt.Errorf("%w: from: %v", ErrInvalid, err)
	}
	if err := msg.To(cfg.To...); err != nil {
		return fmt.Errorf("%w: to: %v", ErrInvalid, err)
	}
	msg.Subject(Subject(events))
	msg.SetDate()
	msg.SetMessageID()
	msg.SetGenHeader(mail.HeaderXMailer, "coffer")
	msg.SetBodyString(mail.TypeTextPlain, Body(events))
	if err := client.DialAndSendWithContext(ctx, msg); err != nil {
		return fmt.Errorf("%w: smtp %s: %w", ErrDelivery, addr, err)
	}
	return nil
}

// tlsOnlyAuth authenticates with SCRAM-SHA-256, PLAIN or LOGIN (the first
// the server offers), and only over a TLS connection: without TLS it fails
// before a byte of the credentials is sent, whichever the mechanism and
// even to localhost (go-mail's own PLAIN allows localhost in the clear).
type tlsOnlyAuth struct {
	user, password, host string
	next                 smtp.Auth
}

func (a *tlsOnlyAuth) Start(server *smtp.ServerInfo) (string, []byte, error) {
	if !server.TLS {
		return "", nil, fmt.Errorf("%w: the SMTP connection to %s is not encrypted, so the password is not sent (the server did not offer STARTTLS; use --tls or a server with STARTTLS)", ErrInsecure, a.host)
	}
	switch {
	case slices.Contains(server.Auth, "SCRAM-SHA-256"):
		a.next = smtp.ScramSHA256Auth(a.user, a.password)
	case slices.Contains(server.Auth, "PLAIN"):
		a.next = smtp.PlainAuth("", a.user, a.password, server.Name, false)
	case slices.Contains(server.Auth, "LOGIN"):
		a.next = smtp.LoginAuth(a.user, a.password, server.Name, false)
	default:
		return "", nil, fmt.Errorf("%w: the SMTP server %s offers no mechanism coffer uses (SCRAM-SHA-256, PLAIN, LOGIN): %v", ErrDelivery, a.host, server.Auth)
	}
	return a.next.Start(server)
}

func (a *tlsOnlyAuth) Next(fromServer []byte, more bool) ([]byte, error) {
	if a.next == nil {
		return nil, fmt.Errorf("%w: smtp auth: no mechanism started", ErrDelivery)
	}
	return a.next.Next(fromServer, more)
}
