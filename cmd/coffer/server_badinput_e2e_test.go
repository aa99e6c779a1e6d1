package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coffer-backup/coffer/internal/pki"
	"github.com/coffer-backup/coffer/internal/server"
	"github.com/coffer-backup/coffer/internal/server/state"
	"github.com/coffer-backup/coffer/internal/serverdb"
	"github.com/coffer-backup/coffer/internal/tlspolicy"
)

// refusals reads the server's refusal records from its database, as
// `coffer server tls-report` does.
func (s *cofferServer) refusals() []tlspolicy.RefusalRecord {
	s.t.Helper()
	db, err := serverdb.Open(context.Background(), filepath.Join(s.dir, serverdb.DefaultFile))
	if err != nil {
		s.t.Fatal(err)
	}
	defer db.Close()
	recs, err := db.Refusals(context.Background(), time.Time{})
	if err != nil {
		s.t.Fatal(err)
	}
	return recs
}

// refusalOf waits up to 5 s for the refusal record of the connection from
// peer (the client's local host:port). The server aggregates a day's
// refusals of one source address and kind into the first one's record, so
// peer must be the first of its address and kind that day.
func (s *cofferServer) refusalOf(peer string) (tlspolicy.RefusalRecord, bool) {
	s.t.Helper()
	var rec tlspolicy.RefusalRecord
	ok := within(5*time.Second, func() bool {
		for _, r := range s.refusals() {
			if r.Peer == peer {
				rec = r
				return true
			}
		}
		return false
	})
	return rec, ok
}

// stateFiles lists the files under the server's objects and temporary
// directories, relative to the state directory.
func stateFiles(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	for _, sub := range []string{state.ObjectsDir, state.TempDir} {
		root := filepath.Join(dir, sub)
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if !d.IsDir() {
				rel, _ := filepath.Rel(dir, p)
				out = append(out, rel)
			}
			return nil
		})
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			t.Fatal(err)
		}
	}
	slices.Sort(out)
	return out
}

// http1Config is a client config for raw HTTP/1.1 on the API port.
func http1Config(cert tls.Certificate, pool *x509.CertPool) *tls.Config {
	cfg := tlspolicy.Default().ClientConfig(cert, pool, "")
	cfg.ServerName = "127.0.0.1"
	cfg.NextProtos = []string{"http/1.1"}
	cfg.ClientSessionCache = nil
	return cfg
}

// dialTLS opens a TCP connection and starts TLS on it, returning the
// client's local address (the peer the server records) even when the
// handshake fails.
func dialTLS(t *testing.T, addr string, cfg *tls.Config) (*tls.Conn, string, error) {
	t.Helper()
	return dialTLSFrom(t, "", addr, cfg)
}

// dialTLSFrom is dialTLS from the local IP address from ("": any).
func dialTLSFrom(t *testing.T, from, addr string, cfg *tls.Config) (*tls.Conn, string, error) {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second}
	if from != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(from)}
	}
	raw, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	_ = raw.SetDeadline(time.Now().Add(10 * time.Second))
	conn := tls.Client(raw, cfg)
	return conn, raw.LocalAddr().String(), conn.Handshake()
}

// tryRequest presents cert, sends one request and returns the response's
// status, or the error that ended the exchange.
func tryRequest(t *testing.T, addr string, cert tls.Certificate, pool *x509.CertPool) (status int, peer string, err error) {
	t.Helper()
	return tryRequestFrom(t, "", addr, cert, pool)
}

// tryRequestFrom is tryRequest from the local IP address from ("": any).
func tryRequestFrom(t *testing.T, from, addr string, cert tls.Certificate, pool *x509.CertPool) (status int, peer string, err error) {
	t.Helper()
	cfg := http1Config(cert, pool)
	// Present cert whatever CAs the server asks for, as an attacker would
	// (crypto/tls would otherwise send none that the server does not name).
	cfg.Certificates = nil
	cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &cert, nil }
	conn, peer, err := dialTLSFrom(t, from, addr, cfg)
	if err != nil {
		_ = conn.Close()
		return 0, peer, err
	}
	defer conn.Close()
	// TLS 1.3: the server judges the client certificate after the client's
	// handshake is done; its verdict arrives with the first read.
	if _, err := io.WriteString(conn, "HEAD /v1/repos/r1 HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		return 0, peer, err
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), &http.Request{Method: http.MethodHead})
	if err != nil {
		return 0, peer, err
	}
	_ = resp.Body.Close()
	return resp.StatusCode, peer, nil
}

// rawRequest sends req as is over a new HTTP/1.1 connection with id's
// certificate and returns the status, or 0 and the error if the server
// closed the connection without a response.
func rawRequest(t *testing.T, addr string, id *pki.Identity, req string) (int, string, error) {
	t.Helper()
	conn, _, err := dialTLS(t, addr, http1Config(id.TLSCertificate(), id.CAPool()))
	if err != nil {
		t.Fatalf("handshake with a valid identity: %v", err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, req); err != nil {
		return 0, "", err
	}
	// The method tells the reader whether a body follows (none after HEAD).
	method, _, _ := strings.Cut(req, " ")
	resp, err := http.ReadResponse(bufio.NewReader(conn), &http.Request{Method: method})
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	return resp.StatusCode, string(body), nil
}

// newCSR makes a fresh client key and CSR, returning the CSR and the key's
// PEM.
func newCSR(t *testing.T, name string) ([]byte, []byte) {
	t.Helper()
	key, err := pki.NewClientKey()
	if err != nil {
		t.Fatal(err)
	}
	csr, err := pki.NewCSR(key, name)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, err := pki.EncodeKeyPEM(key)
	if err != nil {
		t.Fatal(err)
	}
	return csr, keyPEM
}

// clientCert signs a certificate for name with ca and returns it for
// crypto/tls with the chain [leaf, ca].
func clientCert(t *testing.T, ca *pki.CA, name string, ttl time.Duration, now time.Time) tls.Certificate {
	t.Helper()
	csr, keyPEM := newCSR(t, name)
	der, _, err := ca.SignClient(csr, name, ttl, now)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.X509KeyPair(append(pki.EncodeCertPEM(der), ca.CertPEM()...), keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

// TestServerBadInput drives a real `coffer server run` with bad input of
// every kind: certificates it must not accept, malformed and foreign
// tokens, hostile request targets, oversized, truncated and malformed
// uploads and a slow client. Each is refused, the refusal is recorded where
// the server records refusals, and nothing is stored or changed.
func TestServerBadInput(t *testing.T) {
	t.Parallel()
	admin := newEnv(t)
	dir := serverInit(t, admin, "server")
	srv := startServer(t, dir, "127.0.0.1:0")
	alice := newEnv(t)
	srv.enroll(admin, alice, "alice")
	id, err := pki.LoadIdentity(filepath.Join(alice.dir, ".config", "coffer", "identity"))
	if err != nil {
		t.Fatal(err)
	}

	// A repository with one object, through the API.
	if status, body, err := rawRequest(t, srv.addr, id, "POST /v1/repos/r1 HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"); err != nil || status != http.StatusCreated {
		t.Fatalf("create repository: %d %v %s", status, err, body)
	}
	if status, body, err := rawRequest(t, srv.addr, id, "PUT /v1/repos/r1/data/good HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"); err != nil || status != http.StatusCreated {
		t.Fatalf("store an object: %d %v %s", status, err, body)
	}
	listing := func(t *testing.T) string {
		t.Helper()
		status, body, err := rawRequest(t, srv.addr, id, "GET /v1/repos/r1/data/ HTTP/1.1\r\nHost: x\r\n\r\n")
		if err != nil || status != http.StatusOK {
			t.Fatalf("listing: %d %v %s", status, err, body)
		}
		return body
	}
	baseListing := listing(t)
	if !strings.Contains(baseListing, `"good"`) {
		t.Fatalf("listing lacks the stored object: %s", baseListing)
	}
	baseline := stateFiles(t, dir)
	unchanged := func(t *testing.T) {
		t.Helper()
		// The server removes a failed upload's temporary file once the
		// handler returns; give it a moment.
		var now []string
		if !within(5*time.Second, func() bool {
			now = stateFiles(t, dir)
			return slices.Equal(now, baseline)
		}) {
			t.Fatalf("server state changed:\nbefore %q\nafter  %q", baseline, now)
		}
		for _, f := range now {
			if !strings.HasPrefix(f, filepath.Join(state.ObjectsDir, "alice")+string(filepath.Separator)) {
				t.Errorf("file outside alice's namespace: %s", f)
			}
		}
	}
	if len(baseline) == 0 {
		t.Fatal("no stored object found on the server")
	}

	t.Run("certificates", func(t *testing.T) {
		realCA, err := pki.LoadCA(dir)
		if err != nil {
			t.Fatal(err)
		}
		otherCA, err := pki.NewCA("coffer impostor CA", time.Now())
		if err != nil {
			t.Fatal(err)
		}
		srvKP, err := pki.LoadKeyPair(dir, pki.ServerCertFile, pki.ServerKeyFile)
		if err != nil {
			t.Fatal(err)
		}
		past := time.Now().Add(-30 * 24 * time.Hour)
		cases := []struct {
			name     string
			cert     tls.Certificate
			kind     string
			inReason string
		}{
			{"spoofed name from another CA", clientCert(t, otherCA, "alice", time.Hour, time.Now()), tlspolicy.KindBadCert, "unknown authority"},
			{"expired from the server's CA", clientCert(t, realCA, "alice", time.Hour, past), tlspolicy.KindBadCert, "expired"},
			{"server certificate as client", srvKP.TLSCertificate(realCA.Cert), tlspolicy.KindBadCert, "key usage"},
			{"never enrolled name from the server's CA", clientCert(t, realCA, "eve", time.Hour, time.Now()), tlspolicy.KindRejected, "not enrolled"},
		}
		for i, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				// Each from its own address: the server keeps one record
				// per day, source address and kind, counting repeats.
				status, peer, err := tryRequestFrom(t, fmt.Sprintf("127.0.0.%d", 10+i), srv.addr, c.cert, id.CAPool())
				if err == nil {
					t.Fatalf("served with status %d", status)
				}
				t.Logf("refused: %v", err)
				rec, ok := srv.refusalOf(peer)
				if !ok {
					t.Fatalf("no refusal recorded for %s", peer)
				}
				if rec.Kind != c.kind || !strings.Contains(rec.Reason, c.inReason) {
					t.Errorf("refusal record %+v, want kind %q and a reason with %q", rec, c.kind, c.inReason)
				}
				unchanged(t)
			})
		}
		// The genuine alice is still served: a spoofed certificate did not
		// get her revoked or locked out.
		if status, _, err := tryRequest(t, srv.addr, id.TLSCertificate(), id.CAPool()); err != nil || status != http.StatusNoContent {
			t.Fatalf("alice after the impostors: %d %v", status, err)
		}
		// tls-report counts them.
		var rep struct {
			Days []struct {
				ByKind map[string]int `json:"by_kind"`
			} `json:"days"`
		}
		out := admin.must("server", "tls-report", "--dir", dir, "--days", "1", "--json")
		if err := json.Unmarshal([]byte(out), &rep); err != nil || len(rep.Days) != 1 {
			t.Fatalf("tls-report --json: %v\n%s", err, out)
		}
		if rep.Days[0].ByKind[tlspolicy.KindBadCert] < 3 || rep.Days[0].ByKind[tlspolicy.KindRejected] < 1 {
			t.Errorf("tls-report does not count the refused certificates: %s", out)
		}
	})

	t.Run("tokens", func(t *testing.T) {
		good := srv.token(admin, "mallory")
		otherDir := serverInit(t, admin, "other")
		foreign := strings.TrimSpace(admin.must("server", "token", "--dir", otherDir, "--client", "mallory"))
		tk, err := pki.ParseToken(good)
		if err != nil {
			t.Fatal(err)
		}
		tk.Secret[0] ^= 1
		forgedSecret, err := tk.Encode()
		if err != nil {
			t.Fatal(err)
		}
		cases := []struct {
			name, token, msg string
			reachesServer    bool
		}{
			{"garbage", "not a token at all", "malformed enrollment token", false},
			{"prefix only", pki.TokenPrefix, "malformed enrollment token", false},
			{"truncated", good[:len(good)/2], "malformed enrollment token", false},
			{"one character short", good[:len(good)-1], "malformed enrollment token", false},
			{"bad character", good[:len(good)-1] + "!", "malformed enrollment token", false},
			{"too long", good + strings.Repeat("A", 200), "malformed enrollment token", false},
			{"another server's CA", foreign, "nothing was sent", false},
			{"forged secret", forgedSecret, "unknown enrollment token", true},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				e := newEnv(t)
				e.extra = []string{"COFFER_TOKEN=" + c.token}
				idDir := filepath.Join(e.dir, "identity")
				before := len(srv.events(serverdb.ActionEnrollRefused))
				_, se, code := e.run("enroll", "--server", srv.addr, "--identity", idDir)
				if code == 0 || !strings.Contains(se, c.msg) {
					t.Fatalf("exit %d, want non-zero and %q: %s", code, c.msg, se)
				}
				if strings.Contains(se, c.token) && len(c.token) > len(pki.TokenPrefix)+8 {
					t.Errorf("the error repeats the token: %s", se)
				}
				for _, d := range []string{idDir, filepath.Join(e.dir, ".config", "coffer", "identity")} {
					if _, err := os.Stat(d); !errors.Is(err, fs.ErrNotExist) {
						t.Errorf("a refused enrollment left %s: %v", d, err)
					}
				}
				after := len(srv.events(serverdb.ActionEnrollRefused))
				if c.reachesServer && after != before+1 {
					t.Errorf("refused enrollment not in the audit log: %d events before, %d after", before, after)
				}
				if !c.reachesServer && after != before {
					t.Errorf("the client sent a request it should have refused: %d enroll-refused events before, %d after", before, after)
				}
			})
		}
		// None of this spent the genuine token.
		e := newEnv(t)
		e.extra = []string{"COFFER_TOKEN=" + good}
		e.must("enroll", "--server", srv.addr, "--identity", filepath.Join(e.dir, "identity"))
	})

	t.Run("request targets", func(t *testing.T) {
		long := strings.Repeat("a", 129)
		targets := []string{
			"/v1/repos/../x",
			"/v1/repos/r1/../../bob/r1",
			"/v1/repos/r1/data/../../../../tmp/x",
			"/v1/repos/%2e%2e/x",
			"/v1/repos/%2E%2E%2Fbob/data/",
			"/v1/repos/r1%2f..%2f..%2fbob/data/",
			"/v1/repos/r1/data/..%2f..%2fescape",
			"/v1/repos/..%5cbob/data/",
			"/v1/repos/r1/data/a%00b",
			"/v1/repos/r1/data/.hidden",
			"/v1/repos/r1/data/" + long,
			"/v1/repos/" + strings.Repeat("r", 65) + "/data/",
			"/v1/repos/r1/data/" + strings.Repeat("a/", 200) + "x",
			"//v1/repos/r1/data/x",
			"/v1/repos/r1/data/x?y=../z",
			"/v1/repos/r1/data/x#frag",
			"https://127.0.0.1/v1/repos/r1/data/x",
			"http://bob@127.0.0.1/v1/repos/r1/data/",
			"/V1/REPOS/R1/DATA/",
			"*",
		}
		for _, target := range targets {
			for _, method := range []string{"PUT", "GET"} {
				req := method + " " + target + " HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nbad"
				if method == "GET" {
					req = method + " " + target + " HTTP/1.1\r\nHost: x\r\n\r\n"
				}
				status, body, err := rawRequest(t, srv.addr, id, req)
				if err != nil || status < 400 || status > 499 {
					t.Errorf("%s %q: status %d, err %v, body %s; want 4xx", method, target, status, err, body)
				}
			}
		}
		// NUL and a backslash in the raw request line.
		for _, target := range []string{"/v1/repos/r1/data/a\x00b", "/v1/repos/r1\\..\\..\\bob/data/"} {
			status, body, err := rawRequest(t, srv.addr, id, "PUT "+target+" HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nbad")
			if err == nil && (status < 400 || status > 499) {
				t.Errorf("PUT %q: status %d %s; want 4xx or a closed connection", target, status, body)
			}
		}
		unchanged(t)
		if l := listing(t); l != baseListing {
			t.Fatalf("listing after hostile targets: %s", l)
		}
	})

	t.Run("oversized upload", func(t *testing.T) {
		req := fmt.Sprintf("PUT /v1/repos/r1/data/huge HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", server.DefaultMaxObjectSize+1)
		status, body, err := rawRequest(t, srv.addr, id, req)
		if err != nil || status != http.StatusRequestEntityTooLarge {
			t.Fatalf("status %d, err %v, body %s; want 413", status, err, body)
		}
		if l := listing(t); l != baseListing {
			t.Fatalf("listing shows the refused upload: %s", l)
		}
		unchanged(t)
	})

	t.Run("truncated upload", func(t *testing.T) {
		conn, _, err := dialTLS(t, srv.addr, http1Config(id.TLSCertificate(), id.CAPool()))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if _, err := io.WriteString(conn, "PUT /v1/repos/r1/data/cut HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n"+strings.Repeat("x", 1000)); err != nil {
			t.Fatal(err)
		}
		// Give the server the head and the first bytes, so the upload is
		// under way, then end the stream.
		time.Sleep(200 * time.Millisecond)
		if err := conn.CloseWrite(); err != nil {
			t.Fatal(err)
		}
		if resp, err := http.ReadResponse(bufio.NewReader(conn), nil); err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode < 400 || resp.StatusCode > 499 {
				t.Fatalf("a truncated upload got status %d", resp.StatusCode)
			}
		}
		unchanged(t)
		if l := listing(t); l != baseListing {
			t.Fatalf("listing shows the truncated upload: %s", l)
		}
		if status, _, err := rawRequest(t, srv.addr, id, "HEAD /v1/repos/r1/data/cut HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil || status != http.StatusNotFound {
			t.Fatalf("HEAD of the truncated upload: %d %v", status, err)
		}
	})

	t.Run("malformed requests", func(t *testing.T) {
		for _, req := range []string{
			"GARBAGE\r\n\r\n",
			"\x00\x01\x02\x03\r\n\r\n",
			"GET /v1/repos/r1/data/ HTTP/9.9\r\nHost: x\r\n\r\n",
			"GET /v1/repos/r1/data/ HTTP/1.1\r\nNo colon here\r\n\r\n",
			"GET /v1/repos/r1/data/ HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n",
			"PUT /v1/repos/r1/data/m1 HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
			"PUT /v1/repos/r1/data/m2 HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
			"PUT /v1/repos/r1/data/m3 HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
			"PUT /v1/repos/r1/data/m4 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
			"PUT /v1/repos/r1/data/m5 HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nCoffer-Content-Sha256: nothex\r\n\r\nabc",
			"GET /v1/repos/r1/data/ HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("a", 20<<10) + "\r\n\r\n",
		} {
			status, body, err := rawRequest(t, srv.addr, id, req)
			// 505 is net/http's answer to an unknown HTTP version.
			if err == nil && (status < 400 || status > 499) && status != http.StatusHTTPVersionNotSupported {
				t.Errorf("%.60q: status %d %s; want 4xx or a closed connection", req, status, body)
			}
			// The server still serves the next good request.
			if l := listing(t); l != baseListing {
				t.Fatalf("listing after %.60q: %s", req, l)
			}
		}
		unchanged(t)
	})

	t.Run("slow client", func(t *testing.T) {
		if server.DefaultReadHeaderTimeout > 15*time.Second {
			t.Skipf("ReadHeaderTimeout is %v: too slow for CI", server.DefaultReadHeaderTimeout)
		}
		conn, _, err := dialTLS(t, srv.addr, http1Config(id.TLSCertificate(), id.CAPool()))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		limit := server.DefaultReadHeaderTimeout + 5*time.Second
		_ = conn.SetDeadline(time.Now().Add(limit + 5*time.Second))
		start := time.Now()
		// One byte a second of a header that never ends.
		head := "GET /v1/repos/r1/data/ HTTP/1.1\r\nHost: x\r\nX-Slow: " + strings.Repeat("s", 100)
		writeErr := make(chan error, 1)
		go func() {
			for i := 0; i < len(head); i++ {
				if _, err := conn.Write([]byte{head[i]}); err != nil {
					writeErr <- err
					return
				}
				time.Sleep(time.Second)
			}
			writeErr <- nil
		}()
		var got strings.Builder
		n, err := io.Copy(&got, conn)
		closed := time.Since(start)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("the server kept a slow client's connection open for %v", closed)
		}
		if closed > limit {
			t.Fatalf("the server closed a slow client's connection after %v, want within %v", closed, limit)
		}
		// The header timeout, not something else, ended it: the header
		// would have taken minutes at this pace.
		if closed < server.DefaultReadHeaderTimeout-2*time.Second {
			t.Fatalf("the slow client's connection ended after only %v: %q", closed, got.String())
		}
		// net/http answers a header cut off by its timeout with 400 or 408,
		// or just closes.
		if r := got.String(); n > 0 && !strings.HasPrefix(r, "HTTP/1.1 400 ") && !strings.HasPrefix(r, "HTTP/1.1 408 ") {
			t.Fatalf("the slow client got %q", r)
		}
		t.Logf("slow client cut off after %v (%d response bytes, %v)", closed.Round(100*time.Millisecond), n, err)
		_ = conn.Close()
		<-writeErr
		if l := listing(t); l != baseListing {
			t.Fatalf("listing after the slow client: %s", l)
		}
		unchanged(t)
	})
}
