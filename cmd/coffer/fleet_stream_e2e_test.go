package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coffer-backup/coffer/internal/fleet/api"
	"github.com/coffer-backup/coffer/internal/pki"
	"github.com/coffer-backup/coffer/internal/server/fleet/control"
	"github.com/coffer-backup/coffer/internal/serverdb"
	"github.com/coffer-backup/coffer/internal/tlspolicy"
)

// rawAgent speaks the control connection by hand with an identity that
// coffer enroll wrote, over real TLS to a real coffer server run.
type rawAgent struct {
	t    *testing.T
	addr string
	hc   *http.Client
}

func newRawAgent(t *testing.T, e *env, addr string) *rawAgent {
	t.Helper()
	id, err := pki.LoadIdentity(filepath.Join(e.dir, ".config", "coffer", "identity"))
	if err != nil {
		t.Fatal(err)
	}
	conf := tlspolicy.Default().ClientConfig(id.TLSCertificate(), id.CAPool(), "127.0.0.1")
	tr := &http.Transport{TLSClientConfig: conf, ForceAttemptHTTP2: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &rawAgent{t: t, addr: addr, hc: &http.Client{Transport: tr}}
}

// open opens the stream and returns its messages as they arrive; the
// channel closes when the stream ends.
func (a *rawAgent) open() (*http.Response, <-chan *api.Message) {
	a.t.Helper()
	req, err := http.NewRequest(http.MethodGet, "https://"+a.addr+api.StreamPath, nil)
	if err != nil {
		a.t.Fatal(err)
	}
	req.Header.Set(api.HeaderAgentVersion, "0.0.1")
	resp, err := a.hc.Do(req)
	if err != nil {
		a.t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		a.t.Fatalf("stream: %s", resp.Status)
	}
	msgs := make(chan *api.Message, 16)
	go func() {
		defer close(msgs)
		r := bufio.NewReader(resp.Body)
		for {
			line, err := r.ReadBytes('\n')
			if err != nil {
				return
			}
			m, err := api.DecodeMessage(bytes.TrimSuffix(line, []byte("\n")))
			if err != nil {
				a.t.Errorf("stream line %q: %v", line, err)
				return
			}
			msgs <- m
		}
	}()
	a.t.Cleanup(func() { _ = resp.Body.Close() })
	return resp, msgs
}

func (a *rawAgent) report(r *api.Report) int {
	a.t.Helper()
	b, err := json.Marshal(r)
	if err != nil {
		a.t.Fatal(err)
	}
	resp, err := a.hc.Post("https://"+a.addr+api.ReportPath, "application/json", bytes.NewReader(b))
	if err != nil {
		a.t.Fatal(err)
	}
	_ = resp.Body.Close()
	return resp.StatusCode
}

// storedJob reads a job from the server's database as a second process.
func storedJob(t *testing.T, dir, id string) serverdb.Job {
	t.Helper()
	db, err := serverdb.Open(context.Background(), filepath.Join(dir, serverdb.DefaultFile))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	j, err := db.Job(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return j
}

// TestControlStreamEndToEnd drives the control connection of a real
// server: a host's stream answers at once and is pinged, its reports are
// stored and idempotent, another host cannot report its jobs, a job
// running across a server restart is marked failed until the agent
// reports it, and revoking the host ends its stream.
func TestControlStreamEndToEnd(t *testing.T) {
	t.Parallel()
	admin := newEnv(t)
	dir := serverInit(t, admin, "server")
	srv := startServer(t, dir, "127.0.0.1:0")
	web, other := newEnv(t), newEnv(t)
	srv.enroll(admin, web, "web1")
	srv.enroll(admin, other, "db1")
	agent, intruder := newRawAgent(t, web, srv.addr), newRawAgent(t, other, srv.addr)

	resp, msgs := agent.open()
	if resp.ProtoMajor != 2 {
		t.Errorf("stream over %s, want HTTP/2", resp.Proto)
	}
	select {
	case m := <-msgs:
		if m == nil || m.Type != api.MsgPing && m.Type != api.MsgPolicy {
			t.Fatalf("first message %+v", m)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("the stream's first message took more than 2 s")
	}

	job := &api.Report{Job: api.NewID([16]byte{0xc0, 0xff, 0xee}), Kind: api.KindBackup, Repository: "main", State: api.StateRunning,
		Scheduled: true, Start: time.Now().UTC()}
	for range 2 {
		if st := agent.report(job); st != http.StatusNoContent {
			t.Fatalf("report: %d", st)
		}
	}
	if st := intruder.report(job); st != http.StatusForbidden {
		t.Fatalf("another host's report of web1's job: %d, want 403", st)
	}

	// The server dies while the job runs; the restarted one marks it failed
	// until the agent reports how it ended.
	srv.kill()
	startServer(t, dir, srv.addr) // stopped by its cleanup
	if j := storedJob(t, dir, job.Job); j.State != "failed" || j.Error != control.ServerRestarted || j.Client != "web1" {
		t.Fatalf("after a restart: %+v", j)
	}
	job.State, job.End, job.Snapshot = api.StateSucceeded, time.Now().UTC(), strings.Repeat("5a", 32)
	if st := agent.report(job); st != http.StatusNoContent {
		t.Fatalf("report after the restart: %d", st)
	}
	if j := storedJob(t, dir, job.Job); j.State != "succeeded" || j.Snapshot != job.Snapshot || j.ServerSet {
		t.Fatalf("the agent's report did not replace the mark: %+v", j)
	}

	// Revocation ends the stream.
	_, msgs = agent.open()
	<-msgs
	admin.must("server", "revoke", "--dir", dir, "--client", "web1")
	t0 := time.Now()
	deadline := time.After(3 * time.Second)
	for open := true; open; {
		select {
		case _, open = <-msgs:
		case <-deadline:
			t.Fatal("a revoked host's stream is still open after 3 s")
		}
	}
	t.Logf("revoked host's stream ended %s after server revoke returned", time.Since(t0))
}
