package auditlog

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/coffer-backup/coffer/internal/syslogmsg"
)

// FacilityLogAudit is RFC 5424's facility 13, "log audit".
const FacilityLogAudit = 13

// SyslogOptions configure a SyslogSink; every zero value is useful.
type SyslogOptions struct {
	Facility int           // 0..23 (0 means FacilityLogAudit; kern cannot be chosen)
	Hostname string        // "": os.Hostname()
	AppName  string        // "": "coffer"
	Timeout  time.Duration // per dial and write (0: 2 s)
}

// SyslogSink sends each entry as one RFC 5424 message to a syslog server
// over "unixgram", "udp" (one datagram each) or "tcp", "unix" (octet
// counting, RFC 6587). The message's MSGID is the action, its MSG the
// entry's JSON line; refused and failed outcomes have severity warning,
// the rest notice. A failed write redials once.
type SyslogSink struct {
	network, addr string
	opts          SyslogOptions
	procID        string

	mu   sync.Mutex
	conn net.Conn
}

// DialSyslog connects a SyslogSink to addr: NewSyslog, then a first dial,
// whose failure it returns.
func DialSyslog(network, addr string, opts SyslogOptions) (*SyslogSink, error) {
	s, err := NewSyslog(network, addr, opts)
	if err != nil {
		return nil, err
	}
	if err := s.dial(); err != nil {
		return nil, err
	}
	return s, nil
}

// NewSyslog returns a SyslogSink for addr without connecting: the first
// Write dials, so a syslog server that is down at start is only a failed
// Write. network must be one of udp, udp4, udp6, tcp, tcp4, tcp6, unix or
// unixgram.
func NewSyslog(network, addr string, opts SyslogOptions) (*SyslogSink, error) {
	switch network {
	case "udp", "udp4", "udp6", "tcp", "tcp4", "tcp6", "unix", "unixgram":
	default:
		return nil, fmt.Errorf("syslog: network %q is not udp, tcp, unix or unixgram", network)
	}
	if addr == "" {
		return nil, errors.New("syslog: no address")
	}
	if opts.Facility == 0 {
		opts.Facility = FacilityLogAudit
	}
	if opts.Facility < 0 || opts.Facility > 23 {
		return nil, fmt.Errorf("syslog: facility %d is not 0..23", opts.Facility)
	}
	if opts.Hostname == "" {
		opts.Hostname, _ = os.Hostname()
	}
	if opts.AppName == "" {
		opts.AppName = "coffer"
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 2 * time.Second
	}
	return &SyslogSink{network: network, addr: addr, opts: opts, procID: strconv.Itoa(os.Getpid())}, nil
}

func (s *SyslogSink) dial() error {
	c, err := net.DialTimeout(s.network, s.addr, s.opts.Timeout)
	if err != nil {
		return fmt.Errorf("syslog: dial %s %s: %w", s.network, s.addr, err)
	}
	s.conn = c
	return nil
}

// Write implements Sink.
func (s *SyslogSink) Write(e Entry) error {
	msg, err := s.Format(e)
	if err != nil {
		return err
	}
	if s.network == "tcp" || s.network == "tcp4" || s.network == "tcp6" || s.network == "unix" {
		msg = append([]byte(strconv.Itoa(len(msg))+" "), msg...)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for attempt := 0; ; attempt++ {
		if s.conn == nil {
			if err = s.dial(); err != nil {
				return err
			}
		}
		_ = s.conn.SetWriteDeadline(time.Now().Add(s.opts.Timeout))
		if _, err = s.conn.Write(msg); err == nil {
			return nil
		}
		_ = s.conn.Close()
		s.conn = nil
		if attempt == 1 {
			return fmt.Errorf("syslog: write seq %d: %w", e.Seq, err)
		}
	}
}

// Close closes the connection.
func (s *SyslogSink) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn == nil {
		return nil
	}
	err := s.conn.Close()
	s.conn = nil
	return err
}

// Format returns e as an RFC 5424 message (without transport framing):
//
//	<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID - BOM JSON-LINE
//
// TIMESTAMP is the entry's time in UTC to the microsecond; HOSTNAME,
// APP-NAME and MSGID (the action) keep printable ASCII only, cut to the
// RFC's lengths; an empty field is "-".
func (s *SyslogSink) Format(e Entry) ([]byte, error) {
	line, err := EncodeLine(e)
	if err != nil {
		return nil, err
	}
	severity := 5 // notice
	if e.Outcome == OutcomeRefused || e.Outcome == OutcomeFailed {
		severity = 4 // warning
	}
	hdr := syslogmsg.Header(s.opts.Facility, severity, e.Time, s.opts.Hostname, s.opts.AppName, s.procID, e.Action)
	return append([]byte(hdr), line[:len(line)-1]...), nil
}
