// Package mailpittest starts a real SMTP server, mailpit, on loopback for
// the tests of alert delivery, and reads back the mail it received.
package mailpittest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"go/build"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// EnvRequire, set to 1, makes Start fail instead of skip when mailpit is
// not installed (scripts/test.sh sets it).
const EnvRequire = "COFFER_REQUIRE_MAILPIT"

// Install is the command that installs the server the tests use.
const Install = "go install github.com/axllent/mailpit@v1.27.11"

// TLS modes of a server.
const (
	Plain    = ""         // no TLS: STARTTLS is not offered
	StartTLS = "starttls" // STARTTLS offered (not required)
	Implicit = "tls"      // TLS from the first byte
)

// Options shape a server.
type Options struct {
	TLS string // Plain, StartTLS or Implicit
	// Auth makes the server require AUTH with User and Password.
	Auth bool
	// InsecureAuth lets the server offer and accept AUTH PLAIN and LOGIN
	// without TLS, as a badly configured server would (any credentials).
	InsecureAuth bool
}

// Server is a running mailpit.
type Server struct {
	SMTP   string // 127.0.0.1:PORT
	API    string // http://127.0.0.1:PORT
	CAFile string // the CA of the server's certificate (with TLS)
	User   string
	// Password is the SMTP password when Options.Auth is set.
	Password string
}

// Binary returns the path of mailpit: on PATH, or in GOPATH/bin where go
// install puts it; "" when it is in neither.
func Binary() string {
	if p, err := exec.LookPath("mailpit"); err == nil {
		return p
	}
	gopath := os.Getenv("GOPATH")
	if gopath == "" {
		gopath = build.Default.GOPATH
	}
	for _, dir := range filepath.SplitList(gopath) {
		p := filepath.Join(dir, "bin", "mailpit")
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() { // #nosec G703 -- GOPATH/bin, where go install puts tools
			return p
		}
	}
	return ""
}

// Start runs mailpit for the rest of the test. Without the binary it skips
// the test, or fails it when COFFER_REQUIRE_MAILPIT=1.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	bin := Binary()
	if bin == "" {
		if os.Getenv(EnvRequire) == "1" {
			t.Fatalf("mailpit not found on PATH or in GOPATH/bin and %s=1; install it: %s", EnvRequire, Install)
		}
		t.Skipf("mailpit not found on PATH or in GOPATH/bin; install it to run the mail tests: %s", Install)
	}
	dir := t.TempDir()
	s := &Server{}
	args := []string{"--quiet", "--disable-version-check", "--database", filepath.Join(dir, "mailpit.db")}
	if opts.TLS != Plain {
		s.CAFile = filepath.Join(dir, "ca.pem")
		if err := issue(dir); err != nil {
			t.Fatal(err)
		}
		args = append(args, "--smtp-tls-cert", filepath.Join(dir, "cert.pem"), "--smtp-tls-key", filepath.Join(dir, "key.pem"))
		if opts.TLS == Implicit {
			args = append(args, "--smtp-require-tls")
		}
	}
	switch {
	case opts.Auth:
		s.User, s.Password = "alerts", rand.Text()
		authFile := filepath.Join(dir, "smtp-auth")
		if err := os.WriteFile(authFile, []byte(s.User+":"+s.Password+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		args = append(args, "--smtp-auth-file", authFile)
	case opts.InsecureAuth:
		args = append(args, "--smtp-auth-accept-any")
	}
	if opts.InsecureAuth {
		args = append(args, "--smtp-auth-allow-insecure")
	}
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		if lastErr = s.start(t, bin, args); lastErr == nil {
			return s
		}
	}
	t.Fatalf("start mailpit: %v", lastErr)
	return nil
}

func (s *Server) start(t testing.TB, bin string, args []string) error {
	smtpPort, err1 := freePort()
	apiPort, err2 := freePort()
	if err := errors.Join(err1, err2); err != nil {
		return err
	}
	s.SMTP = net.JoinHostPort("127.0.0.1", strconv.Itoa(smtpPort))
	api := net.JoinHostPort("127.0.0.1", strconv.Itoa(apiPort))
	s.API = "http://" + api
	logf, err := os.CreateTemp(t.TempDir(), "mailpit-*.log")
	if err != nil {
		return err
	}
	defer func() { _ = logf.Close() }()
	cmd := exec.Command(bin, append([]string{"--smtp", s.SMTP, "--listen", api}, args...)...) // #nosec G204 -- the test's own binary and arguments
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := http.Get(s.API + "/api/v1/messages") // #nosec G107 -- the test server's loopback address
		if err == nil {
			_ = resp.Body.Close()
			if conn, err := net.DialTimeout("tcp", s.SMTP, time.Second); err == nil {
				_ = conn.Close()
				return nil
			}
		}
		select {
		case err := <-exited:
			exited <- err
			log, _ := os.ReadFile(logf.Name())
			return fmt.Errorf("mailpit exited (%v): %s", err, strings.TrimSpace(string(log)))
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return errors.New("mailpit did not listen within 15s")
		}
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer func() { _ = l.Close() }()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Address is a mail address as mailpit's API gives it.
type Address struct {
	Name    string `json:"Name"`
	Address string `json:"Address"`
}

// Message is a received mail.
type Message struct {
	ID      string    `json:"ID"`
	Subject string    `json:"Subject"`
	From    Address   `json:"From"`
	To      []Address `json:"To"`
	Text    string    `json:"Text"` // the plain-text body (filled by Messages)
}

// Messages returns the mail received so far, newest first, with bodies.
func (s *Server) Messages(t testing.TB) []Message {
	t.Helper()
	var list struct {
		Messages []Message `json:"messages"`
	}
	s.get(t, "/api/v1/messages", &list)
	for i := range list.Messages {
		var full Message
		s.get(t, "/api/v1/message/"+list.Messages[i].ID, &full)
		list.Messages[i].Text = full.Text
	}
	return list.Messages
}

// Wait returns the messages once there are at least n, failing the test
// after timeout.
func (s *Server) Wait(t testing.TB, n int, timeout time.Duration) []Message {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		msgs := s.Messages(t)
		if len(msgs) >= n {
			return msgs
		}
		if time.Now().After(deadline) {
			t.Fatalf("mailpit has %d messages after %v, want %d", len(msgs), timeout, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Find returns the first message, newest first, that match accepts,
// polling until one arrives; false once timeout has passed without one.
func (s *Server) Find(t testing.TB, timeout time.Duration, match func(Message) bool) (Message, bool) {
	t.Helper()
	for deadline := time.Now().Add(timeout); ; time.Sleep(200 * time.Millisecond) {
		for _, m := range s.Messages(t) {
			if match(m) {
				return m, true
			}
		}
		if time.Now().After(deadline) {
			return Message{}, false
		}
	}
}

func (s *Server) get(t testing.TB, path string, v any) {
	t.Helper()
	resp, err := http.Get(s.API + path) // #nosec G107 -- the test server's loopback address
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("mailpit GET %s: %s", path, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("mailpit GET %s: %v", path, err)
	}
}

// issue writes ca.pem, cert.pem and key.pem into dir: a CA of its own and
// a certificate for 127.0.0.1 and localhost that it issued.
func issue(dir string) error {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "mailpittest CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	leaf := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, leaf, caTmpl, &key.PublicKey, caKey)
	if err != nil {
		return err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	files := map[string]*pem.Block{
		"ca.pem":   {Type: "CERTIFICATE", Bytes: caDER},
		"cert.pem": {Type: "CERTIFICATE", Bytes: der},
		"key.pem":  {Type: "PRIVATE KEY", Bytes: keyDER},
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), pem.EncodeToMemory(b), 0o600); err != nil {
			return err
		}
	}
	return nil
}
