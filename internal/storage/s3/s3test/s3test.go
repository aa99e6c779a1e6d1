// Package s3test starts a real S3 server (versitygw over a temporary
// directory, on loopback) for the tests of the s3 backend and its users.
package s3test

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"go/build"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/coffer-backup/coffer/internal/storage/s3"
)

// EnvRequire, set to 1, makes Start fail instead of skip when versitygw
// is not installed (scripts/test.sh sets it).
const EnvRequire = "COFFER_REQUIRE_S3"

// Install is the command that installs the server the tests use.
const Install = "go install github.com/versity/versitygw/cmd/versitygw@v1.8.0"

// Server is a running versitygw. Its credentials are the root account's.
type Server struct {
	// Endpoint is "127.0.0.1:PORT".
	Endpoint string
	// AccessKey and SecretKey sign requests.
	AccessKey, SecretKey string
	// Dir is the directory the server keeps buckets in (one subdirectory
	// per bucket, one file per object).
	Dir string
	// CAFile is the PEM file of the CA that issued the server's
	// certificate, for servers from StartTLS; "" for plain http.
	CAFile string

	buckets atomic.Int64
}

// Binary returns the path of versitygw: on PATH, or in GOPATH/bin where
// go install puts it. "" when it is in neither.
func Binary() string {
	if p, err := exec.LookPath("versitygw"); err == nil {
		return p
	}
	gopath := os.Getenv("GOPATH")
	if gopath == "" {
		gopath = build.Default.GOPATH
	}
	for _, dir := range filepath.SplitList(gopath) {
		p := filepath.Join(dir, "bin", "versitygw")
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() { // #nosec G703 -- GOPATH/bin, where go install puts tools
			return p
		}
	}
	return ""
}

// Start runs versitygw for the rest of the test, with extra global flags
// if given (such as --virtual-domain). Without the binary it skips the
// test, or fails it when COFFER_REQUIRE_S3=1.
func Start(t testing.TB, extra ...string) *Server {
	t.Helper()
	return startServer(t, "", "", extra...)
}

// StartTLS is Start with https, the certificate issued for 127.0.0.1 by a
// CA of its own, whose certificate is in Server.CAFile.
func StartTLS(t testing.TB) *Server {
	t.Helper()
	dir := t.TempDir()
	ca, cert, key, err := issue()
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{"ca.pem": ca, "cert.pem": cert, "key.pem": key}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	s := startServer(t, filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"))
	s.CAFile = filepath.Join(dir, "ca.pem")
	return s
}

func startServer(t testing.TB, certFile, keyFile string, extra ...string) *Server {
	t.Helper()
	bin := Binary()
	if bin == "" {
		if os.Getenv(EnvRequire) == "1" {
			t.Fatalf("versitygw not found on PATH or in GOPATH/bin and %s=1; install it: %s", EnvRequire, Install)
		}
		t.Skipf("versitygw not found on PATH or in GOPATH/bin; install it to run the S3 tests: %s", Install)
	}
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		s, err := start(t, bin, certFile, keyFile, extra)
		if err == nil {
			return s
		}
		lastErr = err
	}
	t.Fatalf("start versitygw: %v", lastErr)
	return nil
}

func start(t testing.TB, bin, certFile, keyFile string, extra []string) (*Server, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	s := &Server{
		Endpoint:  net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
		AccessKey: "coffertest",
		SecretKey: rand.Text(),
		Dir:       t.TempDir(),
	}
	logf, err := os.Create(filepath.Join(t.TempDir(), "versitygw.log"))
	if err != nil {
		return nil, err
	}
	defer func() { _ = logf.Close() }()
	args := append([]string{"--port", s.Endpoint, "--quiet"}, extra...)
	if certFile != "" {
		args = append(args, "--cert", certFile, "--key", keyFile)
	}
	cmd := exec.Command(bin, append(args, "posix", s.Dir)...) // #nosec G204 -- the test's own binary and arguments
	// The root credentials go in the environment, not on the command line.
	cmd.Env = append(os.Environ(), "ROOT_ACCESS_KEY_ID="+s.AccessKey, "ROOT_SECRET_ACCESS_KEY="+s.SecretKey)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})
	deadline := time.Now().Add(15 * time.Second)
	for {
		conn, err := net.DialTimeout("tcp", s.Endpoint, time.Second)
		if err == nil {
			_ = conn.Close()
			return s, nil
		}
		select {
		case err := <-exited:
			exited <- err
			log, _ := os.ReadFile(logf.Name())
			return nil, fmt.Errorf("versitygw exited (%v): %s", err, strings.TrimSpace(string(log)))
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return nil, errors.New("versitygw did not listen within 15s")
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

// Creds returns the server's static credentials.
func (s *Server) Creds() *credentials.Credentials {
	return credentials.NewStaticV4(s.AccessKey, s.SecretKey, "")
}

// Config returns the configuration for bucket and prefix on s, with its
// credentials (not the environment's).
func (s *Server) Config(bucket, prefix string) s3.Config {
	return s3.Config{
		Location: s3.Location{Endpoint: s.Endpoint, Secure: s.CAFile != "", Bucket: bucket, Prefix: prefix},
		Region:   "us-east-1",
		Creds:    s.Creds(),
	}
}

// URL returns the repository location "s3:http://ENDPOINT/BUCKET[/PREFIX]".
func (s *Server) URL(bucket, prefix string) string {
	return s3.Location{Endpoint: s.Endpoint, Secure: s.CAFile != "", Bucket: bucket, Prefix: prefix}.String()
}

// Env returns the environment variables that give coffer s's credentials.
func (s *Server) Env() []string {
	return []string{"AWS_ACCESS_KEY_ID=" + s.AccessKey, "AWS_SECRET_ACCESS_KEY=" + s.SecretKey, "AWS_DEFAULT_REGION=us-east-1"}
}

// NewBucket creates a bucket with a fresh name and returns the name.
func (s *Server) NewBucket(t testing.TB) string {
	t.Helper()
	name := fmt.Sprintf("bucket-%d", s.buckets.Add(1))
	opts := &minio.Options{Creds: s.Creds(), Region: "us-east-1"}
	if s.CAFile != "" {
		pool, err := s3.LoadCAs(s.CAFile)
		if err != nil {
			t.Fatal(err)
		}
		tr, err := minio.DefaultTransport(true)
		if err != nil {
			t.Fatal(err)
		}
		tr.TLSClientConfig.RootCAs = pool
		opts.Secure, opts.Transport = true, tr
	}
	c, err := minio.New(s.Endpoint, opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.MakeBucket(context.Background(), name, minio.MakeBucketOptions{Region: "us-east-1"}); err != nil {
		t.Fatalf("make bucket %s: %v", name, err)
	}
	return name
}
