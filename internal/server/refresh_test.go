package server_test

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coffer-backup/coffer/internal/server"
	"github.com/coffer-backup/coffer/internal/server/servertest"
	"github.com/coffer-backup/coffer/internal/serverdb"
)

// gatedDB holds one armed Clients read after it has read the database,
// until released, as a slow refresh would.
type gatedDB struct {
	serverdb.DB
	mu      sync.Mutex
	armed   bool
	read    chan struct{} // closed when the held read has read
	release chan struct{}
}

func (g *gatedDB) arm() {
	g.mu.Lock()
	g.armed, g.read, g.release = true, make(chan struct{}), make(chan struct{})
	g.mu.Unlock()
}

func (g *gatedDB) Clients(ctx context.Context) ([]serverdb.Client, error) {
	g.mu.Lock()
	hold := g.armed
	g.armed = false
	read, release := g.read, g.release
	g.mu.Unlock()
	cs, err := g.DB.Clients(ctx)
	if hold {
		close(read)
		<-release
	}
	return cs, err
}

// A refresh that read the database before a revocation and finishes after
// a newer refresh must not serve the revoked client again.
func TestSlowRefreshKeepsNewerState(t *testing.T) {
	t.Parallel()
	gate := &gatedDB{}
	env := servertest.Start(t, servertest.Options{
		// Only the test refreshes.
		Config: server.Config{RefreshInterval: time.Hour},
		WrapDB: func(db serverdb.DB) serverdb.DB { gate.DB = db; return gate },
	})
	c := newClient(t, env, env.Enroll(t, "alice", nil))
	c.mustStatus("POST", "/v1/repos/r", nil, 201)
	ctx := context.Background()

	gate.arm()
	slow := make(chan error, 1)
	go func() { slow <- env.Server.Refresh(ctx) }()
	<-gate.read
	if err := env.DB.RevokeClient(ctx, "alice", time.Now(), "test"); err != nil {
		t.Fatal(err)
	}
	if err := env.Server.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	c.mustStatus("HEAD", "/v1/repos/r", nil, 401)
	close(gate.release)
	if err := <-slow; err != nil {
		t.Fatal(err)
	}
	c.mustStatus("HEAD", "/v1/repos/r", nil, 401)

	// Refreshes after the discarded one still apply.
	bob := newClient(t, env, env.Enroll(t, "bob", nil))
	bob.mustStatus("POST", "/v1/repos/r", nil, 201)
}

// The server logs its shutdown, with the reason.
func TestServeLogsShutdown(t *testing.T) {
	t.Parallel()
	var buf syncBuffer
	env := servertest.Start(t, servertest.Options{Config: server.Config{Logger: slog.New(slog.NewTextHandler(&buf, nil))}})
	env.Stop(t)
	if out := buf.String(); !strings.Contains(out, `msg="coffer server shutting down" reason="context canceled"`) {
		t.Fatalf("log lacks the shutdown line:\n%s", out)
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
