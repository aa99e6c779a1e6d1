package main

import (
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/coffer-backup/coffer/internal/pki"
	"github.com/coffer-backup/coffer/internal/tlspolicy"
)

// idleConns is how many idle connections TestServerIdleConnections opens;
// before the fix, about 600 locked every client out.
const idleConns = 1500

// raiseNoFile makes room for n more descriptors in this process and in the
// server it starts (which inherits the limit), or skips the test.
func raiseNoFile(t *testing.T, n uint64) {
	t.Helper()
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Skipf("cannot read RLIMIT_NOFILE: %v", err)
	}
	want := n + 512
	if lim.Cur >= want {
		return
	}
	if lim.Max < want {
		t.Skipf("RLIMIT_NOFILE hard limit %d is below the %d descriptors this test needs", lim.Max, want)
	}
	lim.Cur = lim.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Skipf("cannot raise RLIMIT_NOFILE to %d: %v", lim.Max, err)
	}
}

// TestServerIdleConnections (issue 10, item 10): connections that never
// send a byte, from the client's own address and from others, hold no slot
// anyone else needs. While 1,500 of them are open, an enrolled client's
// request is answered in under a second, and the idle ones are closed.
func TestServerIdleConnections(t *testing.T) {
	raiseNoFile(t, 2*idleConns)
	admin := newEnv(t)
	srv := startServer(t, serverInit(t, admin, "server"), "127.0.0.1:0")
	alice := newEnv(t)
	srv.enroll(admin, alice, "alice")
	id, err := pki.LoadIdentity(filepath.Join(alice.dir, ".config", "coffer", "identity"))
	if err != nil {
		t.Fatal(err)
	}
	request := func() (time.Duration, int, error) {
		start := time.Now()
		status, _, err := rawRequest(t, srv.addr, id, "HEAD /v1/repos/r1 HTTP/1.1\r\nHost: x\r\n\r\n")
		return time.Since(start), status, err
	}
	base, status, err := request()
	if err != nil || status != http.StatusNotFound {
		t.Fatalf("request before the flood: %d %v", status, err)
	}
	t.Logf("baseline %v", base)

	// Two thirds from the client's own address, the rest from five others.
	var idle []net.Conn
	t.Cleanup(func() {
		for _, c := range idle {
			c.Close()
		}
	})
	sources := []string{"127.0.0.1", "127.0.0.1", "127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5", "127.0.0.6"}
	for i := range idleConns {
		from := sources[i*len(sources)/idleConns]
		d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
		c, err := d.Dial("tcp", srv.addr)
		if err != nil {
			t.Fatalf("idle connection %d from %s: %v", i, from, err)
		}
		idle = append(idle, c)
	}
	for i := range 3 {
		took, status, err := request()
		if err != nil || status != http.StatusNotFound {
			t.Fatalf("request %d amid %d idle connections: %d %v\n%s", i, idleConns, status, err, srv.logText())
		}
		t.Logf("amid %v", took)
		if took > time.Second {
			t.Fatalf("request %d amid %d idle connections took %v, want under a second", i, idleConns, took)
		}
	}
	// Every idle connection is closed by the server within the ClientHello
	// deadline (2 s), whatever its address.
	for _, c := range []net.Conn{idle[0], idle[len(idle)/2], idle[len(idle)-1]} {
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := c.Read(make([]byte, 1)); err == nil || isTimeout(err) {
			t.Errorf("idle connection from %s still open: %v", c.LocalAddr(), err)
		}
	}
	// The surplus is recorded as overload (the server writes its refusal
	// log once a second).
	ok := within(5*time.Second, func() bool {
		return slices.ContainsFunc(srv.refusals(), func(r tlspolicy.RefusalRecord) bool { return r.Kind == tlspolicy.KindOverload })
	})
	if !ok {
		t.Error("no overload refusal recorded")
	}
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}
