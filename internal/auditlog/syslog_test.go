package auditlog

import (
	"bufio"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// rfc5424 matches the messages SyslogSink writes: PRI, VERSION, TIMESTAMP,
// HOSTNAME, APP-NAME, PROCID, MSGID, no structured data, BOM and MSG.
var rfc5424 = regexp.MustCompile(`^<(\d{1,3})>1 (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z) ([!-~]{1,255}) ([!-~]{1,48}) ([!-~]{1,128}) ([!-~]{1,32}) - \x{FEFF}(\{.*\})$`)

// listener is a real local syslog receiver: read returns the next message.
type listener struct {
	network, addr string
	read          func(t *testing.T) string
}

func datagramListener(t *testing.T, network, addr string) listener {
	t.Helper()
	pc, err := net.ListenPacket(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pc.Close() })
	return listener{network, pc.LocalAddr().String(), func(t *testing.T) string {
		t.Helper()
		buf := make([]byte, 1<<17)
		_ = pc.SetReadDeadline(time.Now().Add(10 * time.Second))
		n, _, err := pc.ReadFrom(buf)
		if err != nil {
			t.Fatal(err)
		}
		return string(buf[:n])
	}}
}

func streamListener(t *testing.T) listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	conns := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			conns <- c
		}
	}()
	var r *bufio.Reader
	return listener{"tcp", ln.Addr().String(), func(t *testing.T) string {
		t.Helper()
		if r == nil {
			select {
			case c := <-conns:
				t.Cleanup(func() { _ = c.Close() })
				_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
				r = bufio.NewReader(c)
			case <-time.After(10 * time.Second):
				t.Fatal("no connection")
			}
		}
		// RFC 6587 octet counting: "LEN SP MSG".
		n, err := r.ReadString(' ')
		if err != nil {
			t.Fatal(err)
		}
		size, err := strconv.Atoi(strings.TrimSuffix(n, " "))
		if err != nil {
			t.Fatal(err)
		}
		msg := make([]byte, size)
		if _, err := io.ReadFull(r, msg); err != nil {
			t.Fatal(err)
		}
		return string(msg)
	}}
}

func TestSyslogSink(t *testing.T) {
	t.Parallel()
	sockDir, err := os.MkdirTemp("", "sl") // short: unix socket paths are limited
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(sockDir) })
	for name, mk := range map[string]func(t *testing.T) listener{
		"unixgram": func(t *testing.T) listener {
			return datagramListener(t, "unixgram", filepath.Join(sockDir, "log"))
		},
		"udp": func(t *testing.T) listener { return datagramListener(t, "udp", "127.0.0.1:0") },
		"tcp": streamListener,
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ln := mk(t)
			sink, err := DialSyslog(ln.network, ln.addr, SyslogOptions{Hostname: "vault 1", AppName: "coffer-server"})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = sink.Close() })
			_, key := newKey(t)
			l := mustOpen(t, t.TempDir(), Options{Key: key, Sinks: []Sink{sink}, CheckpointEvery: 2})
			var stored []Entry
			for i := range 3 {
				e := entry(i)
				e.Details["text"] = "ünïcode <&> \"quoted\"\n"
				out, err := l.Append(e)
				if err != nil {
					t.Fatal(err)
				}
				stored = append(stored, out)
			}
			// Three entries and the checkpoint after the second, in order.
			wantSeq := []uint64{1, 2, 3, 4}
			for _, seq := range wantSeq {
				msg := ln.read(t)
				m := rfc5424.FindStringSubmatch(msg)
				if m == nil {
					t.Fatalf("not an RFC 5424 message: %q", msg)
				}
				got, err := DecodeLine([]byte(m[7]))
				if err != nil {
					t.Fatalf("MSG is not the entry's line: %v: %q", err, m[7])
				}
				if got.Seq != seq || ComputeHash(got) != got.Hash {
					t.Fatalf("message for seq %d, want %d", got.Seq, seq)
				}
				wantPRI := FacilityLogAudit*8 + 5
				if got.Outcome == OutcomeRefused || got.Outcome == OutcomeFailed {
					wantPRI = FacilityLogAudit*8 + 4
				}
				if m[1] != strconv.Itoa(wantPRI) || m[3] != "vault1" || m[4] != "coffer-server" || m[5] != strconv.Itoa(os.Getpid()) || m[6] != got.Action {
					t.Fatalf("header %q for %+v", m[:7], got)
				}
				if ts, err := time.Parse(time.RFC3339Nano, m[2]); err != nil || !ts.Equal(got.Time.Truncate(time.Microsecond)) {
					t.Fatalf("timestamp %s for %s", m[2], got.Time)
				}
				for _, s := range stored {
					if s.Seq == got.Seq && s.Hash != got.Hash {
						t.Fatalf("seq %d: sent %s, stored %s", s.Seq, got.Hash, s.Hash)
					}
				}
			}
		})
	}
}

func TestSyslogOptions(t *testing.T) {
	t.Parallel()
	if _, err := DialSyslog("udp", "127.0.0.1:9", SyslogOptions{Facility: 24}); err == nil {
		t.Fatal("facility 24 accepted")
	}
	if _, err := DialSyslog("unixgram", filepath.Join(t.TempDir(), "none"), SyslogOptions{}); err == nil {
		t.Fatal("dial to a missing socket succeeded")
	}
}
