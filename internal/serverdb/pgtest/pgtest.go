// Package pgtest starts a real PostgreSQL server for tests: one cluster
// per test binary (initdb into a temporary directory, pg_ctl start on a
// free loopback port), a fresh database per test. Tests skip when the
// PostgreSQL binaries are absent, and fail when COFFER_REQUIRE_PG=1.
package pgtest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" driver
)

// User is the cluster's superuser, whose password is Server.Password.
const User = "postgres"

// Server is the test cluster.
type Server struct {
	Port     int    // on 127.0.0.1
	Password string // User's password (TCP connections need it)
	// PasswordFile holds Password (mode 0600), for --db-password-file.
	PasswordFile string
	dir, bin     string
	asPostgres   bool
	admin        *sql.DB // over the unix socket, trusted
	seq          atomic.Int64
}

var (
	once     sync.Once
	shared   *Server
	startErr error
)

// Main runs a test binary's tests and stops the cluster afterwards, if a
// test started it: call it from TestMain.
func Main(m *testing.M) {
	code := m.Run()
	Stop()
	os.Exit(code)
}

// Stop stops the cluster if a test started it, for a TestMain that does
// more than Main.
func Stop() {
	if shared != nil {
		shared.stop()
	}
}

// Start returns the binary's cluster, starting it on first use. Without
// the PostgreSQL binaries it skips t, or fails it when COFFER_REQUIRE_PG=1.
func Start(t testing.TB) *Server {
	t.Helper()
	once.Do(func() { shared, startErr = start() })
	started(t, startErr)
	return shared
}

// started skips t when err says PostgreSQL is not installed (unless
// COFFER_REQUIRE_PG=1) and fails it on any other error of start.
func started(t testing.TB, err error) {
	t.Helper()
	if errors.Is(err, errNoBinaries) && os.Getenv("COFFER_REQUIRE_PG") != "1" {
		t.Skipf("PostgreSQL: %v (scripts/deps.sh installs it; COFFER_REQUIRE_PG=1 makes this a failure)", err)
	}
	if err != nil {
		t.Fatalf("start PostgreSQL: %v", err)
	}
}

// NewDatabase creates an empty database t_N for t and returns its name; it
// is dropped when t ends.
func (s *Server) NewDatabase(t testing.TB) string {
	t.Helper()
	name := "t_" + strconv.FormatInt(s.seq.Add(1), 10)
	ctx := context.Background()
	if _, err := s.admin.ExecContext(ctx, "CREATE DATABASE "+name+" STRATEGY = FILE_COPY"); err != nil {
		t.Fatalf("create database %s: %v", name, err)
	}
	t.Cleanup(func() {
		_, _ = s.admin.ExecContext(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
	})
	return name
}

// URL returns the password-free URL of database name over TCP.
func (s *Server) URL(name string) string {
	return fmt.Sprintf("postgres://%s@127.0.0.1:%d/%s?sslmode=disable", User, s.Port, name)
}

// Exec runs statements in database name as the superuser (over the
// socket), for tests that tamper with a database.
func (s *Server) Exec(t testing.TB, name, query string, args ...any) {
	t.Helper()
	db, err := sql.Open("pgx", s.socketDSN(name))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = db.Close() }()
	if _, err := db.ExecContext(context.Background(), query, args...); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
}

func (s *Server) socketDSN(name string) string {
	return fmt.Sprintf("host=%s port=%d user=%s dbname=%s sslmode=disable", s.dir, s.Port, User, name)
}

var errNoBinaries = errors.New("initdb and pg_ctl not found")

// binDir finds initdb and pg_ctl: in PATH, else the newest of Debian's
// /usr/lib/postgresql/*/bin.
func binDir() (string, error) {
	if p, err := exec.LookPath("initdb"); err == nil {
		if _, err := exec.LookPath("pg_ctl"); err == nil {
			return filepath.Dir(p), nil
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return version(dirs[i]) > version(dirs[j]) })
	for _, d := range dirs {
		if isExec(filepath.Join(d, "initdb")) && isExec(filepath.Join(d, "pg_ctl")) {
			return d, nil
		}
	}
	return "", errNoBinaries
}

func version(binDir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return n
}

func isExec(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0
}

func start() (*Server, error) {
	bin, err := binDir()
	if err != nil {
		return nil, err
	}
	s := &Server{bin: bin, asPostgres: os.Geteuid() == 0}
	// Not under t.TempDir: the cluster outlives single tests, and its
	// parents must be searchable by the postgres user.
	if s.dir, err = os.MkdirTemp("", "coffer-pg-"); err != nil {
		return nil, err
	}
	if err := s.init(); err != nil {
		_ = os.RemoveAll(s.dir)
		return nil, err
	}
	return s, nil
}

func (s *Server) init() error {
	pw := make([]byte, 16)
	if _, err := rand.Read(pw); err != nil {
		return err
	}
	s.Password = hex.EncodeToString(pw)
	s.PasswordFile = filepath.Join(s.dir, "password")
	if err := os.WriteFile(s.PasswordFile, []byte(s.Password+"\n"), 0o600); err != nil {
		return err
	}
	if s.asPostgres {
		for _, p := range []string{s.dir, s.PasswordFile} {
			if err := chownToPostgres(p); err != nil {
				return err
			}
		}
	}
	data := filepath.Join(s.dir, "data")
	// TCP connections need the password (scram), the socket trusts.
	if err := s.run("initdb", "-D", data, "-U", User, "--pwfile", s.PasswordFile, "--no-sync", "--no-instructions",
		"--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C"); err != nil {
		return err
	}
	port, err := freePort()
	if err != nil {
		return err
	}
	s.Port = port
	if err := s.startCluster(); err != nil {
		return err
	}
	s.admin, err = sql.Open("pgx", s.socketDSN(User))
	if err == nil {
		err = s.admin.PingContext(context.Background())
	}
	if err != nil {
		s.stop()
		return fmt.Errorf("connect: %w", err)
	}
	return nil
}

// startCluster starts the initialised cluster on s.Port and waits until it
// accepts connections.
//
// fsync is off (the tests survive a killed PostgreSQL, not a lost
// machine), but synchronous_commit stays on: off, an immediate stop
// (Halt) loses the last commits PostgreSQL had acknowledged, which a
// real server on a real cluster never sees, and the audit log a test's
// server kept would then be ahead of the head the database kept.
func (s *Server) startCluster() error {
	opts := fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off -c max_connections=200 -c shared_buffers=32MB", s.Port, s.dir)
	return s.run("pg_ctl", "-D", filepath.Join(s.dir, "data"), "-o", opts, "-l", filepath.Join(s.dir, "log"), "-w", "-t", "60", "start")
}

// StartOwn starts a cluster for t alone, stopped and removed when t ends,
// for a test that takes PostgreSQL away (Halt) and brings it back (Resume)
// without disturbing the tests that share Start's cluster. It skips or
// fails as Start does.
func StartOwn(t testing.TB) *Server {
	t.Helper()
	s, err := start()
	started(t, err)
	t.Cleanup(s.stop)
	return s
}

// Halt stops the cluster at once, ending every connection (pg_ctl stop -m
// immediate, as a crash or a lost host would), keeping its data.
func (s *Server) Halt(t testing.TB) {
	t.Helper()
	if err := s.run("pg_ctl", "-D", filepath.Join(s.dir, "data"), "-m", "immediate", "-w", "stop"); err != nil {
		t.Fatalf("stop PostgreSQL: %v", err)
	}
}

// Resume starts a halted cluster again on the same port.
func (s *Server) Resume(t testing.TB) {
	t.Helper()
	if err := s.startCluster(); err != nil {
		t.Fatalf("restart PostgreSQL: %v", err)
	}
}

// run runs a PostgreSQL program, as user postgres when we are root
// (PostgreSQL refuses to run as root).
func (s *Server) run(prog string, args ...string) error {
	name := filepath.Join(s.bin, prog)
	if s.asPostgres {
		args = append([]string{"-u", "postgres", "--", name}, args...)
		name = "runuser"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput() // #nosec G204 -- fixed programs of the PostgreSQL installation
	if err != nil {
		log, _ := os.ReadFile(filepath.Join(s.dir, "log")) // #nosec G304 -- our own cluster's log
		return fmt.Errorf("%s: %w: %s%s", prog, err, strings.TrimSpace(string(out)), tail(log))
	}
	return nil
}

func tail(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return "\nserver log: " + string(b)
}

func (s *Server) stop() {
	if s.admin != nil {
		_ = s.admin.Close()
	}
	_ = s.run("pg_ctl", "-D", filepath.Join(s.dir, "data"), "-m", "immediate", "-w", "stop")
	_ = os.RemoveAll(s.dir)
}

func chownToPostgres(path string) error {
	u, err := user.Lookup("postgres")
	if err != nil {
		return fmt.Errorf("running as root needs a postgres user: %w", err)
	}
	uid, err := strconv.Atoi(u.Uid)
	if err != nil {
		return err
	}
	gid, err := strconv.Atoi(u.Gid)
	if err != nil {
		return err
	}
	return os.Chown(path, uid, gid)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer func() { _ = l.Close() }()
	return l.Addr().(*net.TCPAddr).Port, nil
}
