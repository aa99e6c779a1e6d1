package server_test

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coffer-backup/coffer/internal/server"
)

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func TestRequestLog(t *testing.T) {
	var log lockedBuffer
	env := start(t, server.Config{RequestLog: &log})
	c := newClient(t, env, env.Enroll(t, "alice", nil))
	c.mustStatus("POST", "/v1/repos/r", nil, 201)
	c.mustStatus("HEAD", "/v1/repos/nope", nil, 404)
	// A line is written when its handler returns, just after the response.
	var lines []string
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if lines = strings.Split(strings.TrimSpace(log.String()), "\n"); len(lines) == 2 {
			break
		}
	}
	if len(lines) != 2 {
		t.Fatalf("request log: %q", log.String())
	}
	for i, want := range []struct {
		method string
		status int
	}{{"POST", 201}, {"HEAD", 404}} {
		var rec struct {
			Method     string  `json:"method"`
			Status     int     `json:"status"`
			DurationMS float64 `json:"duration_ms"`
		}
		if err := json.Unmarshal([]byte(lines[i]), &rec); err != nil {
			t.Fatal(err)
		}
		if rec.Method != want.method || rec.Status != want.status || rec.DurationMS < 0 {
			t.Errorf("line %d: %+v", i, rec)
		}
	}
}

// TestRefusedRequestsLogged: a refused request is logged once; a read that
// finds nothing (what `coffer init` asks first) is an answer, not a
// refusal, and is not logged.
func TestRefusedRequestsLogged(t *testing.T) {
	var out lockedBuffer
	env := start(t, server.Config{Logger: slog.New(slog.NewTextHandler(&out, nil))})
	c := newClient(t, env, env.Enroll(t, "alice", nil))
	c.mustStatus("POST", "/v1/repos/r", nil, 201)
	c.mustStatus("HEAD", "/v1/repos/nope", nil, 404)
	c.mustStatus("HEAD", "/v1/repos/r/config/config", nil, 404)
	c.mustStatus("GET", "/v1/repos/r/config/config", nil, 404)
	c.mustStatus("GET", "/v1/repos/r/bogus/x", nil, 400)
	var got string
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if got = out.String(); strings.Contains(got, "request refused") {
			break
		}
	}
	for _, want := range []string{"request refused", "client=alice", "status=400", "/v1/repos/r/bogus/x"} {
		if !strings.Contains(got, want) {
			t.Fatalf("refusal log lacks %q:\n%s", want, got)
		}
	}
	if strings.Count(got, "request refused") != 1 {
		t.Fatalf("a successful or not-found request was logged as refused:\n%s", got)
	}
}
