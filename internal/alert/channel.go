package alert

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/mail"
	"net/url"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// ChannelKind is how a channel delivers.
type ChannelKind string

// The channel kinds.
const (
	Email   ChannelKind = "email"
	Webhook ChannelKind = "webhook"
	Syslog  ChannelKind = "syslog"
)

// SMTP security modes (EmailConfig.Security).
const (
	// SMTPOpportunistic (the zero value, "") upgrades with STARTTLS
	// whenever the server offers it, and sends mail in the clear only to a
	// server that does not (never a password: see EmailConfig.User).
	SMTPOpportunistic = ""
	// SMTPStartTLS requires STARTTLS: a server that does not offer it is an
	// error and gets nothing.
	SMTPStartTLS = "starttls"
	// SMTPImplicitTLS speaks TLS from the first byte (port 465).
	SMTPImplicitTLS = "tls"
)

// Channel is one alert destination and the events it wants. Exactly the
// config of its Kind is set. The zero values of the filters match
// everything.
type Channel struct {
	Name string      `json:"name"` // 1-64 of a-z0-9_-, starting with a letter or digit
	Kind ChannelKind `json:"kind"`
	// Events this channel gets; empty: all.
	Events []Kind `json:"events,omitempty"`
	// Clients and Groups scope the channel to events of those clients or
	// of clients in those groups; both empty: every client, and the
	// server's own events (which have no client) too.
	Clients []string `json:"clients,omitempty"`
	Groups  []string `json:"groups,omitempty"`
	// DigestAt, "HH:MM" in UTC, collects the channel's events and sends
	// them as one message a day at that time; empty: each event at once.
	DigestAt string `json:"digest_at,omitempty"`

	Email   *EmailConfig   `json:"email,omitempty"`
	Webhook *WebhookConfig `json:"webhook,omitempty"`
	Syslog  *SyslogConfig  `json:"syslog,omitempty"`
}

// EmailConfig sends mail over SMTP.
type EmailConfig struct {
	SMTP     string `json:"smtp"`               // HOST:PORT (HOST alone: port 587, or 465 with SecurityTLS)
	Security string `json:"security,omitempty"` // SMTPOpportunistic, SMTPStartTLS or SMTPImplicitTLS
	// User and PasswordFile authenticate; the password is read from the
	// file (mode 0600 or stricter) at each delivery and sent only over TLS.
	User         string   `json:"user,omitempty"`
	PasswordFile string   `json:"password_file,omitempty"`
	CAFile       string   `json:"ca_file,omitempty"` // PEM; set: trust only these CAs for the server
	From         string   `json:"from"`
	To           []string `json:"to"`
}

// WebhookConfig posts a signed JSON body to a URL.
type WebhookConfig struct {
	URL        string `json:"url"`               // http or https
	SecretFile string `json:"secret_file"`       // the HMAC key, mode 0600 or stricter, at least 16 bytes
	CAFile     string `json:"ca_file,omitempty"` // PEM; set: trust only these CAs for the receiver
}

// SyslogConfig sends RFC 5424 messages.
type SyslogConfig struct {
	Network  string `json:"network,omitempty"`  // "unixgram" (default), "unix", "udp", "tcp"
	Address  string `json:"address,omitempty"`  // a socket path ("": /dev/log) or HOST:PORT
	Facility string `json:"facility,omitempty"` // "daemon" (default), "user", "auth", "authpriv", "local0".."local7"
	AppName  string `json:"app_name,omitempty"` // "": "coffer"
}

// Limits of a channel's configuration.
const (
	maxChannelJSON = 64 << 10
	maxRecipients  = 32
	maxFilter      = 256
	maxPath        = 4096
	maxURL         = 2048
)

// ParseChannel decodes a channel stored or sent as JSON (Channel's
// encoding), strictly: no unknown field, nothing after the object, and the
// result valid.
func ParseChannel(data []byte) (Channel, error) {
	if len(data) > maxChannelJSON {
		return Channel{}, fmt.Errorf("%w: channel of %d bytes is over %d", ErrInvalid, len(data), maxChannelJSON)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var c Channel
	if err := dec.Decode(&c); err != nil {
		return Channel{}, fmt.Errorf("%w: channel: %v", ErrInvalid, err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return Channel{}, fmt.Errorf("%w: channel: data after the object", ErrInvalid)
	}
	if err := c.Validate(); err != nil {
		return Channel{}, err
	}
	return c, nil
}

// Encode returns the channel's JSON, as ParseChannel reads it.
func (c Channel) Encode() ([]byte, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return json.Marshal(c)
}

// Validate checks the configuration's syntax, naming the first bad field.
// It does not look at the files it names: see CheckFiles.
func (c Channel) Validate() error {
	if err := validName("name", c.Name, 64, false); err != nil {
		return err
	}
	if err := c.validateFilters(); err != nil {
		return fmt.Errorf("channel %s: %w", c.Name, err)
	}
	set := 0
	for _, p := range []bool{c.Email != nil, c.Webhook != nil, c.Syslog != nil} {
		if p {
			set++
		}
	}
	var err error
	switch {
	case c.Kind == Email && c.Email != nil && set == 1:
		err = c.Email.validate()
	case c.Kind == Webhook && c.Webhook != nil && set == 1:
		err = c.Webhook.validate()
	case c.Kind == Syslog && c.Syslog != nil && set == 1:
		err = c.Syslog.validate()
	case c.Kind != Email && c.Kind != Webhook && c.Kind != Syslog:
		err = fmt.Errorf("%w: kind %q is not email, webhook or syslog", ErrInvalid, clip(string(c.Kind), 64))
	default:
		err = fmt.Errorf("%w: a %s channel needs its %s settings and no others", ErrInvalid, c.Kind, c.Kind)
	}
	if err != nil {
		return fmt.Errorf("channel %s: %w", c.Name, err)
	}
	return nil
}

func (c Channel) validateFilters() error {
	if len(c.Events) > maxFilter || len(c.Clients) > maxFilter || len(c.Groups) > maxFilter {
		return fmt.Errorf("%w: at most %d events, clients and groups each", ErrInvalid, maxFilter)
	}
	for i, k := range c.Events {
		if _, err := ParseKind(string(k)); err != nil {
			return fmt.Errorf("events[%d]: %w", i, err)
		}
		if slices.Contains(c.Events[:i], k) {
			return fmt.Errorf("%w: events[%d]: %s named twice", ErrInvalid, i, k)
		}
	}
	for i, n := range c.Clients {
		if err := validName(fmt.Sprintf("clients[%d]", i), n, 63, true); err != nil {
			return err
		}
	}
	for i, n := range c.Groups {
		if err := validName(fmt.Sprintf("groups[%d]", i), n, 63, true); err != nil {
			return err
		}
	}
	if c.DigestAt != "" {
		if _, err := parseHHMM(c.DigestAt); err != nil {
			return fmt.Errorf("%w: digest_at %q: %v", ErrInvalid, clip(c.DigestAt, 16), err)
		}
	}
	return nil
}

// validName accepts 1-limit of a-z0-9_- (and '.' when dots), starting with
// a letter or digit, without "..".
func validName(field, s string, limit int, dots bool) error {
	ok := len(s) > 0 && len(s) <= limit && !strings.Contains(s, "..")
	for i := 0; ok && i < len(s); i++ {
		c := s[i]
		ok = c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || i > 0 && (c == '-' || c == '_' || dots && c == '.')
	}
	if !ok {
		return fmt.Errorf("%w: %s %q: 1-%d of a-z, 0-9, '-', '_'%s, starting with a letter or digit", ErrInvalid, field, clip(s, 80), limit, map[bool]string{true: ", '.'"}[dots])
	}
	return nil
}

func parseHHMM(s string) (time.Duration, error) {
	h, m, ok := strings.Cut(s, ":")
	if !ok || len(h) != 2 || len(m) != 2 {
		return 0, errors.New("want HH:MM")
	}
	hh, err1 := strconv.Atoi(h)
	mm, err2 := strconv.Atoi(m)
	if err1 != nil || err2 != nil || hh < 0 || hh > 23 || mm < 0 || mm > 59 || h[0] == '+' || m[0] == '+' || h[0] == '-' || m[0] == '-' {
		return 0, errors.New("want HH:MM, 00:00 to 23:59")
	}
	return time.Duration(hh)*time.Hour + time.Duration(mm)*time.Minute, nil
}

// nextDigest returns the first time at or after now that is at (HH:MM UTC).
func nextDigest(at string, now time.Time) time.Time {
	off, err := parseHHMM(at)
	if err != nil {
		return now
	}
	day := now.UTC().Truncate(24 * time.Hour)
	t := day.Add(off)
	if t.Before(now) {
		t = t.Add(24 * time.Hour)
	}
	return t
}

func validPath(field, p string, required bool) error {
	switch {
	case p == "" && !required:
		return nil
	case p == "":
		return fmt.Errorf("%w: %s is required", ErrInvalid, field)
	case len(p) > maxPath || !filepath.IsAbs(p) || strings.ContainsFunc(p, isControl):
		return fmt.Errorf("%w: %s %q must be an absolute path", ErrInvalid, field, clip(p, 80))
	}
	return nil
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }

func (e *EmailConfig) validate() error {
	if _, err := e.addr(); err != nil {
		return err
	}
	if e.Security != SMTPOpportunistic && e.Security != SMTPStartTLS && e.Security != SMTPImplicitTLS {
		return fmt.Errorf("%w: email security %q is not \"\", starttls or tls", ErrInvalid, clip(e.Security, 32))
	}
	if (e.User == "") != (e.PasswordFile == "") {
		return fmt.Errorf("%w: email user and password_file go together", ErrInvalid)
	}
	if len(e.User) > 256 || strings.ContainsFunc(e.User, isControl) {
		return fmt.Errorf("%w: email user: at most 256 bytes without control characters", ErrInvalid)
	}
	if err := validPath("email password_file", e.PasswordFile, false); err != nil {
		return err
	}
	if err := validPath("email ca_file", e.CAFile, false); err != nil {
		return err
	}
	if err := validAddress("email from", e.From); err != nil {
		return err
	}
	if len(e.To) == 0 || len(e.To) > maxRecipients {
		return fmt.Errorf("%w: email to: 1-%d recipients", ErrInvalid, maxRecipients)
	}
	for i, to := range e.To {
		if err := validAddress(fmt.Sprintf("email to[%d]", i), to); err != nil {
			return err
		}
	}
	return nil
}

// addr returns the SMTP server's HOST:PORT, with the mode's default port.
func (e *EmailConfig) addr() (string, error) {
	host, port, err := net.SplitHostPort(e.SMTP)
	if err != nil {
		host, port = e.SMTP, "587"
		if e.Security == SMTPImplicitTLS {
			port = "465"
		}
	}
	n, perr := strconv.Atoi(port)
	if host == "" || len(host) > 253 || strings.ContainsAny(host, " /@[]") || strings.ContainsFunc(host, isControl) || perr != nil || n < 1 || n > 65535 || port[0] == '+' {
		return "", fmt.Errorf("%w: email smtp %q is not HOST:PORT", ErrInvalid, clip(e.SMTP, 80))
	}
	return net.JoinHostPort(host, strconv.Itoa(n)), nil
}

// validAddress accepts one RFC 5322 address (a display name allowed).
func validAddress(field, s string) error {
	if len(s) > 320 || strings.ContainsFunc(s, isControl) {
		return fmt.Errorf("%w: %s: at most 320 bytes without control characters", ErrInvalid, field)
	}
	if _, err := mail.ParseAddress(s); err != nil {
		return fmt.Errorf("%w: %s %q: %v", ErrInvalid, field, clip(s, 80), err)
	}
	return nil
}

func (w *WebhookConfig) validate() error {
	if len(w.URL) > maxURL || strings.ContainsFunc(w.URL, isControl) {
		return fmt.Errorf("%w: webhook url: at most %d bytes without control characters", ErrInvalid, maxURL)
	}
	u, err := url.Parse(w.URL)
	if err != nil {
		return fmt.Errorf("%w: webhook url: %v", ErrInvalid, err)
	}
	switch {
	case u.Scheme != "https" && u.Scheme != "http":
		return fmt.Errorf("%w: webhook url %q: scheme must be https or http", ErrInvalid, clip(w.URL, 80))
	case u.Host == "" || u.Hostname() == "":
		return fmt.Errorf("%w: webhook url %q has no host", ErrInvalid, clip(w.URL, 80))
	case u.User != nil:
		return fmt.Errorf("%w: webhook url must not hold credentials (the body is signed with secret_file)", ErrInvalid)
	case u.Fragment != "" || strings.Contains(w.URL, "#"):
		return fmt.Errorf("%w: webhook url must not have a fragment", ErrInvalid)
	}
	if err := validPath("webhook secret_file", w.SecretFile, true); err != nil {
		return err
	}
	return validPath("webhook ca_file", w.CAFile, false)
}

// facilities maps the accepted syslog facility names to their codes.
var facilities = map[string]int{
	"user": 1, "daemon": 3, "auth": 4, "authpriv": 10,
	"local0": 16, "local1": 17, "local2": 18, "local3": 19,
	"local4": 20, "local5": 21, "local6": 22, "local7": 23,
}

func (s *SyslogConfig) validate() error {
	switch s.Network {
	case "", "unixgram", "unix":
		if err := validPath("syslog address", s.Address, false); err != nil {
			return err
		}
	case "udp", "tcp":
		host, port, err := net.SplitHostPort(s.Address)
		n, perr := strconv.Atoi(port)
		if err != nil || host == "" || perr != nil || n < 1 || n > 65535 || strings.ContainsFunc(host, isControl) {
			return fmt.Errorf("%w: syslog address %q is not HOST:PORT", ErrInvalid, clip(s.Address, 80))
		}
	default:
		return fmt.Errorf("%w: syslog network %q is not unixgram, unix, udp or tcp", ErrInvalid, clip(s.Network, 32))
	}
	if _, ok := facilities[s.Facility]; !ok && s.Facility != "" {
		return fmt.Errorf("%w: syslog facility %q is not user, daemon, auth, authpriv or local0..local7", ErrInvalid, clip(s.Facility, 32))
	}
	if len(s.AppName) > 48 || strings.ContainsFunc(s.AppName, func(r rune) bool { return r < 33 || r > 126 }) {
		return fmt.Errorf("%w: syslog app_name: at most 48 printable ASCII characters", ErrInvalid)
	}
	return nil
}

// Matches reports whether the channel wants e: its kind is among Events
// (or Events is empty) and, when the channel is scoped to clients or
// groups, e's client is one of them or in one of them. A scoped channel
// does not get the server's own events, which have no client. Test events
// always match.
func (c Channel) Matches(e Event) bool {
	if e.Kind == Test {
		return true
	}
	if len(c.Events) > 0 && !slices.Contains(c.Events, e.Kind) {
		return false
	}
	if len(c.Clients) == 0 && len(c.Groups) == 0 {
		return true
	}
	if e.Client != "" && slices.Contains(c.Clients, e.Client) {
		return true
	}
	for _, g := range e.Groups {
		if e.Client != "" && slices.Contains(c.Groups, g) {
			return true
		}
	}
	return false
}
