package tlspolicy

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/coffer-backup/coffer/internal/pki"
)

// memLog is a RefusalLog in memory.
type memLog struct {
	mu   sync.Mutex
	recs []RefusalRecord
}

func (m *memLog) LogRefusal(r RefusalRecord) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.recs = append(m.recs, r)
	return nil
}

func (m *memLog) records() []RefusalRecord {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]RefusalRecord(nil), m.recs...)
}

// waitFor polls cond for up to 5 s: refusals are logged asynchronously.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

type testPKI struct {
	ca     *pki.CA
	server *pki.KeyPair
}

func newPKI(t testing.TB) *testPKI {
	t.Helper()
	ca, err := pki.NewCA("coffer test CA", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	srv, err := ca.IssueServer(nil, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return &testPKI{ca: ca, server: srv}
}

func (p *testPKI) serverCert() tls.Certificate { return p.server.TLSCertificate(p.ca.Cert) }

func (p *testPKI) client(t testing.TB, name string) (tls.Certificate, *x509.Certificate) {
	t.Helper()
	key, err := pki.NewClientKey()
	if err != nil {
		t.Fatal(err)
	}
	csr, err := pki.NewCSR(key, name)
	if err != nil {
		t.Fatal(err)
	}
	der, _, err := p.ca.SignClient(csr, name, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: c}, c
}

// echoServer accepts on l and echoes what it reads; it records every byte
// received.
type echoServer struct {
	l        net.Listener
	mu       sync.Mutex
	received []byte
	wg       sync.WaitGroup
}

func serveEcho(t *testing.T, l net.Listener) *echoServer {
	s := &echoServer{l: l}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				defer c.Close()
				buf := make([]byte, 1024)
				for {
					n, err := c.Read(buf)
					s.mu.Lock()
					s.received = append(s.received, buf[:n]...)
					s.mu.Unlock()
					if err != nil {
						return
					}
					if _, err := c.Write(buf[:n]); err != nil {
						return
					}
				}
			}()
		}
	}()
	t.Cleanup(func() { l.Close(); s.wg.Wait() })
	return s
}

func (s *echoServer) got() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]byte(nil), s.received...)
}

// roundTrip dials addr with cfg, writes msg and reads the echo. A refused
// client certificate shows up at the first read in TLS 1.3.
func roundTrip(addr string, cfg *tls.Config, msg string) (tls.ConnectionState, error) {
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, cfg)
	if err != nil {
		return tls.ConnectionState{}, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte(msg)); err != nil {
		return c.ConnectionState(), err
	}
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(c, buf); err != nil {
		return c.ConnectionState(), err
	}
	if string(buf) != msg {
		return c.ConnectionState(), errors.New("echo mismatch")
	}
	return c.ConnectionState(), nil
}

func listenTCP(t *testing.T) net.Listener {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return l
}
