package alert

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/coffer-backup/coffer/internal/syslogmsg"
)

// defaultSyslogSocket is the local syslog socket.
const defaultSyslogSocket = "/dev/log"

// SyslogMessage formats one event as an RFC 5424 message, without
// transport framing:
//
//	<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID - BOM{"id":...,"kind":...}
//
// PRI is facility×8 + the kind's severity; TIMESTAMP the event's time in
// UTC to the microsecond; MSGID the kind; no structured data; MSG a UTF-8
// byte order mark and the event as one line of JSON (PayloadEvent).
// Header fields keep printable ASCII only, cut to the RFC's lengths; an
// empty one is "-".
func SyslogMessage(id string, e Event, facility int, hostname, appName, procID string) ([]byte, error) {
	body, err := json.Marshal(PayloadEvent{ID: id, Event: e})
	if err != nil {
		return nil, err
	}
	severity := 5
	if k, ok := kinds[e.Kind]; ok {
		severity = k.severity
	}
	hdr := syslogmsg.Header(facility, severity, e.Time, hostname, appName, procID, string(e.Kind))
	return append([]byte(hdr), body...), nil
}

// maxSyslogMessage bounds a message: receivers must take 480 bytes over
// UDP and should take 2048 (RFC 5426); common ones take 8 KiB.
const maxSyslogMessage = 8 << 10

// shortened is e with its summary cut to 1 KiB, its groups to 4 and its
// details replaced by a note, so that a long event still fits in one
// syslog message.
func shortened(e Event) Event {
	e.Summary = clip(e.Summary, 1024)
	if len(e.Groups) > 4 {
		e.Groups = e.Groups[:4]
	}
	e.Details = map[string]string{"truncated": "details too long for syslog; see the mail or webhook"}
	return e
}

// sendSyslog writes one message per event: a datagram each over
// unixgram and udp, octet-counted (RFC 6587) over unix and tcp.
func sendSyslog(ctx context.Context, cfg *SyslogConfig, d delivery, timeout time.Duration) error {
	network, addr := cfg.Network, cfg.Address
	if network == "" {
		network = "unixgram"
	}
	if addr == "" {
		addr = defaultSyslogSocket
	}
	facility, ok := facilities[cfg.Facility]
	if !ok {
		facility = facilities["daemon"]
	}
	app := cfg.AppName
	if app == "" {
		app = "coffer"
	}
	host, _ := os.Hostname()
	dialer := net.Dialer{Timeout: timeout}
	conn, err := dialer.DialContext(ctx, network, addr)
	if err != nil {
		return fmt.Errorf("%w: syslog %s %s: %w", ErrDelivery, network, addr, err)
	}
	defer func() { _ = conn.Close() }()
	_ = conn.SetWriteDeadline(time.Now().Add(timeout))
	framed := network == "tcp" || network == "unix"
	for i, e := range d.events {
		msg, err := SyslogMessage(d.ids[i], e, facility, host, app, strconv.Itoa(os.Getpid()))
		if err == nil && len(msg) > maxSyslogMessage {
			msg, err = SyslogMessage(d.ids[i], shortened(e), facility, host, app, strconv.Itoa(os.Getpid()))
		}
		if err != nil {
			return err
		}
		if framed {
			msg = append([]byte(strconv.Itoa(len(msg))+" "), msg...)
		}
		if _, err := conn.Write(msg); err != nil {
			return fmt.Errorf("%w: syslog %s %s: %w", ErrDelivery, network, addr, err)
		}
	}
	return nil
}
