package tlspolicy

import (
	"io"
	"net"
	"slices"
	"testing"
	"time"
)

// startListener runs an echo server behind ServerConfig and Listen with
// opts, returning its PKI, address and refusal log.
func startListener(t *testing.T, opts ListenerOptions) (*testPKI, string, *memLog) {
	t.Helper()
	pk, log, p := newPKI(t), new(memLog), Default()
	l := p.Listen(listenTCP(t), p.ServerConfig(pk.serverCert(), pk.ca.Pool(), nil), log, opts)
	serveEcho(t, l)
	return pk, l.Addr().String(), log
}

// dialIdle opens n TCP connections to addr from local address from and
// sends nothing on them. They are closed when the test ends.
func dialIdle(t *testing.T, addr, from string, n int) []net.Conn {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
	conns := make([]net.Conn, 0, n)
	for range n {
		c, err := d.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("idle connection %d from %s: %v", len(conns), from, err)
		}
		conns = append(conns, c)
	}
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	return conns
}

// closedByPeer tells whether the server has closed c, waiting up to wait.
func closedByPeer(c net.Conn, wait time.Duration) bool {
	_ = c.SetReadDeadline(time.Now().Add(wait))
	_, err := c.Read(make([]byte, 1))
	return err == io.EOF
}

// TestListenerHelloTimeout: a peer that sends nothing is closed after
// HelloTimeout, well before HandshakeTimeout, and logged as a timeout.
func TestListenerHelloTimeout(t *testing.T) {
	t.Parallel()
	_, addr, log := startListener(t, ListenerOptions{HelloTimeout: 200 * time.Millisecond, HandshakeTimeout: time.Minute})
	idle := dialIdle(t, addr, "127.0.0.1", 1)[0]
	start := time.Now()
	if !closedByPeer(idle, 5*time.Second) {
		t.Fatal("an idle connection was not closed")
	}
	if el := time.Since(start); el > 2*time.Second {
		t.Fatalf("idle connection closed after %v, want about 200ms", el)
	}
	waitFor(t, "timeout refusal", func() bool {
		return slices.ContainsFunc(log.records(), func(r RefusalRecord) bool { return r.Kind == KindTimeout })
	})
}

// TestListenerIdlePeersCannotLockOut: hundreds of idle connections, from
// the client's own address and from others, neither block Accept nor keep
// an enrolled client out; the surplus is closed and logged as overload.
func TestListenerIdlePeersCannotLockOut(t *testing.T) {
	t.Parallel()
	pk, addr, log := startListener(t, ListenerOptions{HelloTimeout: time.Minute, MaxPendingPerSource: 8, MaxHandshakes: 64})
	same := dialIdle(t, addr, "127.0.0.1", 200)
	for _, from := range []string{"127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"} {
		dialIdle(t, addr, from, 50)
	}
	cert, _ := pk.client(t, "alice")
	start := time.Now()
	if _, err := roundTrip(addr, Default().ClientConfig(cert, pk.ca.Pool(), "localhost"), "hello"); err != nil {
		t.Fatalf("enrolled client amid idle connections: %v", err)
	}
	if el := time.Since(start); el > raceSlowdown*time.Second {
		t.Fatalf("enrolled client served in %v, want under a second (%d under the race detector)", el, raceSlowdown)
	}
	// The oldest idle connections of the crowded address were closed.
	if !closedByPeer(same[0], 2*time.Second) {
		t.Error("the oldest idle connection of a crowded address is still open")
	}
	waitFor(t, "overload refusals", func() bool {
		return slices.ContainsFunc(log.records(), func(r RefusalRecord) bool { return r.Kind == KindOverload })
	})
}
