// Package syslogmsg formats the header of a syslog message as RFC 5424
// defines it. The audit log's syslog sink and the alerts' syslog channel
// both write one; the standard library's log/syslog writes the older
// RFC 3164 form.
package syslogmsg

import (
	"fmt"
	"strings"
	"time"
)

// Header returns "<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID - " and
// the UTF-8 byte order mark that announces a UTF-8 message, ready for the
// message to be appended. Header fields keep only printable ASCII, cut to
// the lengths the RFC allows; an empty one becomes the NILVALUE "-".
func Header(facility, severity int, t time.Time, hostname, appName, procID, msgID string) string {
	return fmt.Sprintf("<%d>1 %s %s %s %s %s - \ufeff", facility*8+severity,
		t.UTC().Format("2006-01-02T15:04:05.000000Z07:00"),
		field(hostname, 255), field(appName, 48), field(procID, 128), field(msgID, 32))
}

// field keeps the printable ASCII of v (RFC 5424 PRINTUSASCII), at most
// limit bytes, or the NILVALUE "-".
func field(v string, limit int) string {
	v = strings.Map(func(r rune) rune {
		if r < 33 || r > 126 {
			return -1
		}
		return r
	}, v)
	if len(v) > limit {
		v = v[:limit]
	}
	if v == "" {
		return "-"
	}
	return v
}
