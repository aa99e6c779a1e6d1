package tlsscan

import (
	"crypto/tls"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/coffer-backup/coffer/internal/pki"
	"github.com/coffer-backup/coffer/internal/tlspolicy"
)

// memLog is a tlspolicy.RefusalLog in memory.
type memLog struct {
	mu   sync.Mutex
	recs []tlspolicy.RefusalRecord
}

func (m *memLog) LogRefusal(r tlspolicy.RefusalRecord) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.recs = append(m.recs, r)
	return nil
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

// echoServer accepts on l and echoes what it reads; it records every byte
// received.
type echoServer struct {
	mu       sync.Mutex
	received []byte
	wg       sync.WaitGroup
}

func serveEcho(t *testing.T, l net.Listener) *echoServer {
	s := &echoServer{}
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

func listenTCP(t *testing.T) net.Listener {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// policyServer is an echo server behind coffer's server config and
// refusal-logging listener, which requires a client certificate.
type policyServer struct {
	addr string
	log  *memLog
	echo *echoServer
}

func startPolicyServer(t *testing.T) *policyServer {
	t.Helper()
	pk := newPKI(t)
	s := &policyServer{log: new(memLog)}
	p := tlspolicy.Default()
	cfg := p.ServerConfig(pk.serverCert(), pk.ca.Pool(), nil)
	l := p.Listen(listenTCP(t), cfg, s.log, tlspolicy.ListenerOptions{HandshakeTimeout: 3 * time.Second})
	s.addr = l.Addr().String()
	s.echo = serveEcho(t, l)
	return s
}

func (s *policyServer) kinds() []string {
	s.log.mu.Lock()
	defer s.log.mu.Unlock()
	var k []string
	for _, r := range s.log.recs {
		k = append(k, r.Kind)
	}
	return k
}
