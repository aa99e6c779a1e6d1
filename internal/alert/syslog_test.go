package alert_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/coffer-backup/coffer/internal/alert"
)

// rfc5424 is a message parsed by parse5424.
type rfc5424 struct {
	pri, version                           int
	timestamp                              time.Time
	hostname, appName, procID, msgID, data string
	msg                                    []byte // after the BOM
}

// parse5424 parses msg strictly by RFC 5424's grammar, as far as coffer
// writes it: a NILVALUE structured data and a UTF-8 MSG with its BOM.
func parse5424(msg []byte) (rfc5424, error) {
	var m rfc5424
	if len(msg) == 0 || msg[0] != '<' {
		return m, errors.New("no PRI")
	}
	end := bytes.IndexByte(msg, '>')
	if end < 2 || end > 4 {
		return m, errors.New("bad PRI")
	}
	pri, err := strconv.Atoi(string(msg[1:end]))
	if err != nil || pri < 0 || pri > 191 || (end > 2 && msg[1] == '0') {
		return m, fmt.Errorf("bad PRIVAL %q", msg[1:end])
	}
	m.pri = pri
	fields := bytes.SplitN(msg[end+1:], []byte(" "), 8)
	if len(fields) != 8 {
		return m, errors.New("too few header fields")
	}
	if m.version, err = strconv.Atoi(string(fields[0])); err != nil || m.version != 1 {
		return m, fmt.Errorf("version %q", fields[0])
	}
	if m.timestamp, err = time.Parse(time.RFC3339Nano, string(fields[1])); err != nil {
		return m, fmt.Errorf("timestamp: %v", err)
	}
	if frac := strings.SplitN(string(fields[1]), ".", 2); len(frac) == 2 && len(strings.TrimRight(frac[1], "Z+-:0123456789")) == 0 && len(strings.TrimRight(frac[1], "Z")) > 6 {
		return m, errors.New("TIME-SECFRAC over 6 digits")
	}
	for i, limit := range []int{255, 48, 128, 32} {
		f := fields[2+i]
		if len(f) == 0 || len(f) > limit {
			return m, fmt.Errorf("header field %d: length %d", i, len(f))
		}
		for _, c := range f {
			if c < 33 || c > 126 {
				return m, fmt.Errorf("header field %d: byte %#x", i, c)
			}
		}
	}
	m.hostname, m.appName, m.procID, m.msgID = string(fields[2]), string(fields[3]), string(fields[4]), string(fields[5])
	if m.data = string(fields[6]); m.data != "-" {
		return m, fmt.Errorf("structured data %q", m.data)
	}
	rest, ok := bytes.CutPrefix(fields[7], []byte("\ufeff"))
	if !ok || !utf8.Valid(rest) {
		return m, errors.New("MSG is not BOM and UTF-8")
	}
	m.msg = rest
	return m, nil
}

// A syslog channel's message reaches a UDP listener as one datagram that
// parses as RFC 5424, with the event in its MSG.
func TestSyslogUDP(t *testing.T) {
	t.Parallel()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = pc.Close() }()
	c := alert.Channel{Name: "siem", Kind: alert.Syslog, Syslog: &alert.SyslogConfig{Network: "udp", Address: pc.LocalAddr().String(), Facility: "local3"}}
	d := startDispatcher(t, newStore(t), alert.Options{}, c)
	e := missed
	e.Summary = "line one\nline two <13>1 forged"
	if _, err := d.Enqueue(context.Background(), e); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64<<10)
	_ = pc.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, _, err := pc.ReadFrom(buf)
	if err != nil {
		t.Fatal(err)
	}
	m, err := parse5424(buf[:n])
	if err != nil {
		t.Fatalf("%v: %q", err, buf[:n])
	}
	if m.pri != 19*8+3 || m.appName != "coffer" || m.msgID != "backup-missed" || !m.timestamp.Equal(e.Time) {
		t.Fatalf("header %+v", m)
	}
	var got alert.PayloadEvent
	if err := json.Unmarshal(m.msg, &got); err != nil {
		t.Fatal(err)
	}
	if got.ID != "1" || got.Summary != e.Summary || got.Client != "web1" || bytes.ContainsAny(m.msg, "\n\r") {
		t.Fatalf("msg %s", m.msg)
	}
}

// Over TCP each message is framed by its length (RFC 6587 octet counting).
func TestSyslogTCPFraming(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = l.Close() }()
	got := make(chan []byte, 1)
	go func() {
		conn, err := l.Accept()
		if err != nil {
			got <- nil
			return
		}
		defer func() { _ = conn.Close() }()
		_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		var all []byte
		buf := make([]byte, 4096)
		for {
			n, err := conn.Read(buf)
			all = append(all, buf[:n]...)
			if err != nil {
				got <- all
				return
			}
		}
	}()
	c := alert.Channel{Name: "tcp", Kind: alert.Syslog, Syslog: &alert.SyslogConfig{Network: "tcp", Address: l.Addr().String()}}
	d := startDispatcher(t, newStore(t), alert.Options{}, c)
	if err := d.Test(context.Background(), "tcp"); err != nil {
		t.Fatal(err)
	}
	all := <-got
	size, rest, ok := bytes.Cut(all, []byte(" "))
	n, err := strconv.Atoi(string(size))
	if !ok || err != nil || n != len(rest) {
		t.Fatalf("framing: %q", all)
	}
	if m, err := parse5424(rest); err != nil || m.pri != 3*8+6 || m.msgID != "test" {
		t.Fatalf("%+v, %v", m, err)
	}
}

// A long event is shortened to fit one datagram.
func TestSyslogLongEventShortened(t *testing.T) {
	t.Parallel()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = pc.Close() }()
	c := alert.Channel{Name: "siem", Kind: alert.Syslog, Syslog: &alert.SyslogConfig{Network: "udp", Address: pc.LocalAddr().String()}}
	d := startDispatcher(t, newStore(t), alert.Options{}, c)
	e := missed
	e.Details = map[string]string{}
	for i := 0; i < 40; i++ {
		e.Details[fmt.Sprint("k", i)] = strings.Repeat("x", 5000)
	}
	if _, err := d.Enqueue(context.Background(), e); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64<<10)
	_ = pc.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, _, err := pc.ReadFrom(buf)
	if err != nil {
		t.Fatal(err)
	}
	if n > 8<<10 {
		t.Fatalf("datagram of %d bytes", n)
	}
	m, err := parse5424(buf[:n])
	if err != nil || !bytes.Contains(m.msg, []byte("truncated")) {
		t.Fatalf("%v: %q", err, buf[:n])
	}
}

// Whatever the host-controlled strings, the message parses and carries the
// event exactly.
func FuzzSyslogMessage(f *testing.F) {
	f.Add("web1", "prod", "job-1", "a summary", "key", "value", "host.example", "coffer", int64(1_800_000_000_123_456_789), uint8(0))
	f.Add("", "", "", "line\nbreak <1>1 - - -", "k\x00", "\xff\xfe", "", "", int64(0), uint8(5))
	f.Add("x y", "\u202e", "\r\n", strings.Repeat("é", 600), "", "", "h o s t", "ä", int64(-1), uint8(12))
	f.Fuzz(func(t *testing.T, client, group, job, summary, key, value, host, app string, nanos int64, kind uint8) {
		kinds := alert.Kinds()
		e := alert.Event{Kind: kinds[int(kind)%len(kinds)], Client: client, Groups: []string{group}, JobID: job,
			Time: time.Unix(0, nanos), Summary: summary, Details: map[string]string{key: value}}
		e = e.Normalize()
		msg, err := alert.SyslogMessage("42", e, 3, host, app, "1234")
		if err != nil {
			t.Fatal(err)
		}
		m, err := parse5424(msg)
		if err != nil {
			t.Fatalf("%v: %q", err, msg)
		}
		if m.msgID != string(e.Kind) || m.pri != 3*8+severityOf(e.Kind) || !m.timestamp.Equal(e.Time.Truncate(time.Microsecond)) {
			t.Fatalf("header %+v for %+v", m, e)
		}
		var got alert.PayloadEvent
		if err := json.Unmarshal(m.msg, &got); err != nil {
			t.Fatal(err)
		}
		if got.ID != "42" || !got.Time.Equal(e.Time) {
			t.Fatalf("got %+v", got)
		}
		got.Time = e.Time
		if !reflect.DeepEqual(got.Event, e) {
			t.Fatalf("event changed:\n%+v\n%+v", got.Event, e)
		}
	})
}

func severityOf(k alert.Kind) int {
	switch k {
	case alert.BackupFailed, alert.BackupMissed, alert.AgentOffline, alert.CheckFailed, alert.TLSAuditFailed:
		return 3
	case alert.BackupWarning, alert.BackupSkipped, alert.CertExpiring, alert.ReplicationLag:
		return 4
	case alert.RestoreFinished:
		return 5
	}
	return 6
}
