package control_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/coffer-backup/coffer/internal/auditlog"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coffer-backup/coffer/internal/fleet/api"
	"github.com/coffer-backup/coffer/internal/fleet/policy"
	"github.com/coffer-backup/coffer/internal/server"
	"github.com/coffer-backup/coffer/internal/server/fleet/control"
	"github.com/coffer-backup/coffer/internal/server/servertest"
	"github.com/coffer-backup/coffer/internal/serverdb"
)

// policies is a PolicySource over signed policies held in memory, standing
// in for the fleet's policy store.
type policies struct {
	t    testing.TB
	priv ed25519.PrivateKey
	mu   sync.Mutex
	m    map[string][]byte
	gen  map[string]uint64
	fail map[string]error // returned once by SignedPolicy
}

func newPolicies(t testing.TB) *policies {
	_, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &policies{t: t, priv: priv, m: map[string][]byte{}, gen: map[string]uint64{}, fail: map[string]error{}}
}

func (p *policies) pub() ed25519.PublicKey { return p.priv.Public().(ed25519.PublicKey) }

// set signs a policy for client with one repository "main" on sched and
// returns its generation.
func (p *policies) set(client, sched string) uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.gen[client]++
	pol := &policy.Policy{Version: policy.Version, Client: client, Generation: p.gen[client], Issued: time.Now().UTC().Truncate(time.Second),
		Repositories: []policy.Repository{{Name: "main", Paths: []string{"/data"}, Schedule: sched}}, RestoreRoot: "/srv/restore"}
	signed, err := policy.Sign(p.priv, pol)
	if err != nil {
		p.t.Fatal(err)
	}
	p.m[client] = signed
	return pol.Generation
}

func (p *policies) SignedPolicy(_ context.Context, client string) ([]byte, uint64, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.fail[client]; err != nil {
		delete(p.fail, client)
		return nil, 0, err
	}
	if p.m[client] == nil {
		return nil, 0, control.ErrNoPolicy
	}
	return p.m[client], p.gen[client], nil
}

// access lets the certificate named admin do everything and refuses every
// other caller, standing in for the fleet's roles.
type access struct{ name string }

func (a access) Authorize(_ context.Context, action control.Action, client string) error {
	if a.name != "admin" {
		return fmt.Errorf("%w: %s may not %s %s", control.ErrForbidden, a.name, action, client)
	}
	return nil
}
func (a access) Sees(control.Action, string) bool { return a.name == "admin" }
func (a access) Name() string                     { return "user:" + a.name }
func (a access) Actor() auditlog.Actor            { return auditlog.Actor{Name: a.name, Role: "admin"} }

// clock is a settable clock for the control.
type clock struct {
	mu  sync.Mutex
	off time.Duration
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.off)
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.off += d
	c.mu.Unlock()
}

type fleet struct {
	env *servertest.Env
	ctl *control.Control
	pol *policies
	clk *clock
}

func start(t *testing.T) *fleet {
	t.Helper()
	f := &fleet{pol: newPolicies(t), clk: &clock{}}
	f.env = servertest.Start(t, servertest.Options{
		Config: server.Config{FleetAccess: func(r *http.Request) (control.Access, error) {
			name, _ := server.ClientName(r.Context())
			return access{name}, nil
		}},
		Control: func(db *serverdb.SQLite) *control.Control {
			ctl, err := control.New(control.Config{Store: db, Policies: f.pol, PolicyKey: f.pol.pub(), Now: f.clk.now,
				PingInterval: 200 * time.Millisecond, Version: "1.2.0", Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				t.Fatal(err)
			}
			f.ctl = ctl
			return ctl
		},
	})
	return f
}

// host is an enrolled client with an HTTP/2 client over real TLS.
type host struct {
	t    *testing.T
	f    *fleet
	name string
	hc   *http.Client
}

func (f *fleet) host(t *testing.T, name string) *host {
	id := f.env.Enroll(t, name, nil)
	tr := &http.Transport{TLSClientConfig: id.TLS, ForceAttemptHTTP2: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &host{t: t, f: f, name: name, hc: &http.Client{Transport: tr}}
}

func (h *host) url(p string) string { return "https://" + h.f.env.Addr + p }

// stream is an open control stream.
type stream struct {
	t     *testing.T
	resp  *http.Response
	lines chan *api.Message
	done  chan error
}

func (h *host) open() *stream {
	h.t.Helper()
	req, err := http.NewRequest(http.MethodGet, h.url(api.StreamPath), nil)
	if err != nil {
		h.t.Fatal(err)
	}
	req.Header.Set(api.HeaderAgentVersion, "1.1.9")
	resp, err := h.hc.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		h.t.Fatalf("stream: %s", resp.Status)
	}
	s := &stream{t: h.t, resp: resp, lines: make(chan *api.Message, 100), done: make(chan error, 1)}
	go func() {
		r := bufio.NewReader(resp.Body)
		for {
			line, err := r.ReadBytes('\n')
			if err != nil {
				s.done <- err
				close(s.lines)
				return
			}
			m, err := api.DecodeMessage(bytes.TrimSuffix(line, []byte("\n")))
			if err != nil {
				s.done <- err
				close(s.lines)
				return
			}
			s.lines <- m
		}
	}()
	h.t.Cleanup(func() { _ = resp.Body.Close() })
	return s
}

// next returns the next message that is not a ping, within limit.
func (s *stream) next(limit time.Duration) *api.Message {
	s.t.Helper()
	deadline := time.After(limit)
	for {
		select {
		case m, ok := <-s.lines:
			if !ok {
				s.t.Fatalf("stream ended: %v", <-s.done)
			}
			if m.Type != api.MsgPing {
				return m
			}
		case <-deadline:
			s.t.Fatalf("no message within %s", limit)
		}
	}
}

// ended waits for the stream to end within limit.
func (s *stream) ended(limit time.Duration) {
	s.t.Helper()
	deadline := time.After(limit)
	for {
		select {
		case _, ok := <-s.lines:
			if !ok {
				return
			}
		case <-deadline:
			s.t.Fatalf("stream still open after %s", limit)
		}
	}
}

// do sends a JSON request (body nil: none) and decodes a JSON answer into
// out (if not nil); it returns the status.
func (h *host) do(method, p string, body, out any) int {
	h.t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			h.t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, h.url(p), rd)
	if err != nil {
		h.t.Fatal(err)
	}
	resp, err := h.hc.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode < 300 {
		if err := json.Unmarshal(b, out); err != nil {
			h.t.Fatalf("%s %s: %v: %s", method, p, err, b)
		}
	}
	return resp.StatusCode
}

func (h *host) report(r *api.Report) int { return h.do(http.MethodPost, api.ReportPath, r, nil) }

func TestStreamSendsPolicyFirstAndPushesChanges(t *testing.T) {
	t.Parallel()
	f := start(t)
	web := f.host(t, "web1")
	admin := f.host(t, "admin")
	f.pol.set("web1", "every 1h")
	s := web.open()
	if s.resp.ProtoMajor != 2 {
		t.Errorf("stream over %s, want HTTP/2", s.resp.Proto)
	}
	m := s.next(2 * time.Second)
	if m.Type != api.MsgPolicy {
		t.Fatalf("first message %s, want the policy", m.Type)
	}
	if p, err := policy.Verify(m.Policy, f.pol.pub(), "web1", 0); err != nil || p.Generation != 1 {
		t.Fatalf("policy on the stream: %v, %v", p, err)
	}

	// A run-now reaches the stream within 2 s of being ordered.
	var job api.JobInfo
	t0 := time.Now()
	if st := admin.do(http.MethodPost, api.RunNowPath, api.RunNow{Client: "web1", Kind: api.KindBackup}, &job); st != http.StatusCreated {
		t.Fatalf("run-now: %d", st)
	}
	m = s.next(2 * time.Second)
	if m.Type != api.MsgJob || m.Job.ID != job.ID || m.Job.Kind != api.KindBackup || m.Job.Repository != "main" {
		t.Fatalf("after run-now: %+v", m)
	}
	t.Logf("run-now reached the stream in %s", time.Since(t0))

	// A new policy is pushed as soon as the change is announced.
	gen := f.pol.set("web1", "every 2h")
	t0 = time.Now()
	f.ctl.PolicyChanged([]string{"web1"})
	m = s.next(2 * time.Second)
	if _, err := policy.Verify(m.Policy, f.pol.pub(), "web1", gen); m.Type != api.MsgPolicy || err != nil {
		t.Fatalf("after a policy change: %s, %v", m.Type, err)
	}
	t.Logf("policy change reached the stream in %s", time.Since(t0))

	// Cancelling the delivered job tells the agent.
	var cancelled api.JobInfo
	if st := admin.do(http.MethodPost, api.JobsPath+"/"+job.ID+api.CancelSuffix, nil, &cancelled); st != http.StatusOK || cancelled.State != api.StateCancelled {
		t.Fatalf("cancel: %d %+v", st, cancelled)
	}
	if m = s.next(2 * time.Second); m.Type != api.MsgCancel || m.Cancel != job.ID {
		t.Fatalf("after cancel: %+v", m)
	}

	// The host shows online with its agent's version, flagged older.
	var st []api.HostStatus
	if code := admin.do(http.MethodGet, api.StatusPath, nil, &st); code != http.StatusOK {
		t.Fatalf("status: %d", code)
	}
	var got *api.HostStatus
	for i := range st {
		if st[i].Client == "web1" {
			got = &st[i]
		}
	}
	if got == nil || !got.Online || got.AgentVersion != "1.1.9" || !got.AgentOutdated || got.PolicyGeneration != gen || got.NextRun.IsZero() || got.RPO != api.RPOOk {
		t.Fatalf("status of web1: %+v", got)
	}
}

// any returns the next message, ping or not, within limit.
func (s *stream) any(limit time.Duration) *api.Message {
	s.t.Helper()
	select {
	case m, ok := <-s.lines:
		if !ok {
			s.t.Fatalf("stream ended: %v", <-s.done)
		}
		return m
	case <-time.After(limit):
		s.t.Fatalf("no message within %s", limit)
	}
	return nil
}

func TestSecondStreamReplacesFirst(t *testing.T) {
	t.Parallel()
	f := start(t)
	web := f.host(t, "web1")
	first := web.open()
	// A host without a policy gets a ping first, so it knows it is heard.
	if m := first.any(2 * time.Second); m.Type != api.MsgPing {
		t.Fatalf("first message %s, want a ping", m.Type)
	}
	second := web.open()
	second.any(2 * time.Second)
	first.ended(2 * time.Second)
	// The second stream still gets pings.
	for range 2 {
		if m := second.any(2 * time.Second); m.Type != api.MsgPing {
			t.Fatalf("second stream: %s", m.Type)
		}
	}
	if _, ok := f.ctl.Hub().Online("web1"); !ok {
		t.Fatal("host not online with its second stream")
	}
}

func TestRevokedHostsStreamIsClosed(t *testing.T) {
	t.Parallel()
	f := start(t)
	web := f.host(t, "web1")
	s := web.open()
	s.any(2 * time.Second)
	if err := f.env.DB.RevokeClient(context.Background(), "web1", time.Now(), "test"); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	s.ended(2 * time.Second)
	t.Logf("revoked host's stream closed in %s", time.Since(t0))
	deadline := time.Now().Add(2 * time.Second)
	for {
		if _, ok := f.ctl.Hub().Online("web1"); !ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("revoked host still online in the hub")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestReports(t *testing.T) {
	t.Parallel()
	f := start(t)
	web, db := f.host(t, "web1"), f.host(t, "db1")
	f.pol.set("web1", "every 1h")
	id := api.NewID([16]byte{1, 2, 3})
	rep := &api.Report{Job: id, Kind: api.KindBackup, Repository: "main", State: api.StateSucceeded, Scheduled: true,
		Start: time.Now().Add(-time.Minute).UTC(), End: time.Now().UTC(), Snapshot: strings.Repeat("ab", 32),
		Stats: api.Stats{FilesNew: 3, BytesAdded: 100}, Files: []string{"/data/unreadable"}}
	for i := range 3 { // the first creates the job; replays change nothing
		if st := web.report(rep); st != http.StatusNoContent {
			t.Fatalf("report %d: %d", i, st)
		}
	}
	j, err := f.env.DB.Job(context.Background(), id)
	if err != nil || j.Client != "web1" || j.State != "succeeded" || j.Snapshot != rep.Snapshot || len(j.Files) != 0 {
		t.Fatalf("stored %+v, %v (file names are kept only when the policy allows them)", j, err)
	}
	// Another host may not report it, whatever it claims.
	if st := db.report(rep); st != http.StatusForbidden {
		t.Fatalf("another host's job: %d, want 403", st)
	}
	// A contradicting final state is refused and the stored one kept.
	bad := *rep
	bad.State = api.StateFailed
	if st := web.report(&bad); st != http.StatusConflict {
		t.Fatalf("contradicting report: %d, want 409", st)
	}
	// An ordered job the server never ordered.
	unknown := *rep
	unknown.Job, unknown.Scheduled = api.NewID([16]byte{9}), false
	if st := web.report(&unknown); st != http.StatusNotFound {
		t.Fatalf("unknown ordered job: %d, want 404", st)
	}
	// Malformed bodies.
	for _, body := range []string{"", "{", `{"job":"x"}`, strings.Repeat(" ", api.MaxMessage+10)} {
		resp, err := web.hc.Post(web.url(api.ReportPath), "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("body %.20q: %d, want 400", body, resp.StatusCode)
		}
	}
	if j2, _ := f.env.DB.Job(context.Background(), id); j2.State != "succeeded" || !j2.Updated.Equal(j.Updated) {
		t.Fatalf("refused reports changed the job: %+v", j2)
	}
	// A host cannot use the administration API.
	if st := web.do(http.MethodGet, api.StatusPath, nil, nil); st != http.StatusForbidden {
		t.Fatalf("host asking for status: %d, want 403", st)
	}
}

// An ordered job's life: queued while the host is away, sent when it
// connects, again after a reconnect until the agent reports it, then
// running and done; restores are checked against the restore root.
func TestOrderedJobs(t *testing.T) {
	t.Parallel()
	f := start(t)
	web, admin := f.host(t, "web1"), f.host(t, "admin")
	f.pol.set("web1", "every 1h")
	var job api.JobInfo
	order := api.RestoreOrder{Client: "web1", Restore: api.Restore{Snapshot: "latest", Target: "/srv/restore/x", Include: []string{"/etc"}}}
	if st := admin.do(http.MethodPost, api.RestorePath, order, &job); st != http.StatusCreated || job.State != api.StateQueued {
		t.Fatalf("restore: %d %+v", st, job)
	}
	for _, target := range []string{"/etc", "/srv/restore/../x", "/srv/restorex"} {
		o := order
		o.Target = target
		if st := admin.do(http.MethodPost, api.RestorePath, o, nil); st != http.StatusBadRequest {
			t.Errorf("restore to %s: %d, want 400", target, st)
		}
	}
	if st := admin.do(http.MethodPost, api.RunNowPath, api.RunNow{Client: "nobody", Kind: api.KindBackup}, nil); st != http.StatusNotFound {
		t.Errorf("run-now on an unknown host: %d, want 404", st)
	}
	if st := admin.do(http.MethodPost, api.RunNowPath, api.RunNow{Client: "web1", Kind: api.KindRestore}, nil); st != http.StatusBadRequest {
		t.Errorf("run-now of a restore: %d, want 400", st)
	}
	if st := web.do(http.MethodPost, api.RunNowPath, api.RunNow{Client: "web1", Kind: api.KindBackup}, nil); st != http.StatusForbidden {
		t.Errorf("run-now by a host: %d, want 403", st)
	}

	s := web.open()
	s.next(2 * time.Second) // the policy
	m := s.next(2 * time.Second)
	if m.Type != api.MsgJob || m.Job.ID != job.ID || m.Job.Restore.Target != "/srv/restore/x" {
		t.Fatalf("queued job on connect: %+v", m)
	}
	// Not reported yet: a new stream gets it again.
	s2 := web.open()
	s.ended(2 * time.Second)
	s2.next(2 * time.Second)
	if m := s2.next(2 * time.Second); m.Type != api.MsgJob || m.Job.ID != job.ID {
		t.Fatalf("queued job on reconnect: %+v", m)
	}
	rep := &api.Report{Job: job.ID, Kind: api.KindRestore, Repository: "main", State: api.StateRunning, Start: time.Now().UTC()}
	if st := web.report(rep); st != http.StatusNoContent {
		t.Fatalf("running: %d", st)
	}
	rep.State, rep.End = api.StateSucceeded, time.Now().UTC()
	if st := web.report(rep); st != http.StatusNoContent {
		t.Fatalf("succeeded: %d", st)
	}
	var got api.JobInfo
	if st := admin.do(http.MethodGet, api.JobsPath+"/"+job.ID, nil, &got); st != http.StatusOK || got.State != api.StateSucceeded || got.OrderedBy != "user:admin" {
		t.Fatalf("job after its reports: %d %+v", st, got)
	}
	if st := admin.do(http.MethodPost, api.JobsPath+"/"+job.ID+api.CancelSuffix, nil, nil); st != http.StatusConflict {
		t.Fatalf("cancel a finished job: %d, want 409", st)
	}
	var list []api.JobInfo
	if st := admin.do(http.MethodGet, api.JobsPath+"?client=web1&state=succeeded", nil, &list); st != http.StatusOK || len(list) != 1 || list[0].ID != job.ID {
		t.Fatalf("jobs listing: %d %+v", st, list)
	}
	if st := admin.do(http.MethodGet, api.JobsPath+"?state=bogus", nil, nil); st != http.StatusBadRequest {
		t.Fatalf("jobs listing with a bad state: %d", st)
	}
	// A new stream no longer gets the job.
	s3 := web.open()
	s2.ended(2 * time.Second)
	s3.next(2 * time.Second)
	select {
	case m := <-s3.lines:
		if m != nil && m.Type != api.MsgPing {
			t.Fatalf("after the job ended, a new stream got %+v", m)
		}
	case <-time.After(300 * time.Millisecond):
	}
}

// Jobs running when the server stopped are marked failed, and the agent's
// later report replaces the mark.
func TestRecoverMarksRunningJobsFailed(t *testing.T) {
	t.Parallel()
	f := start(t)
	web := f.host(t, "web1")
	ctx := context.Background()
	rep := &api.Report{Job: api.NewID([16]byte{7}), Kind: api.KindBackup, Repository: "main", State: api.StateRunning, Scheduled: true, Start: time.Now().UTC()}
	if st := web.report(rep); st != http.StatusNoContent {
		t.Fatal(st)
	}
	if err := f.ctl.Recover(ctx); err != nil {
		t.Fatal(err)
	}
	j, err := f.env.DB.Job(ctx, rep.Job)
	if err != nil || j.State != "failed" || j.Error != control.ServerRestarted {
		t.Fatalf("after recovery: %+v, %v", j, err)
	}
	rep.State, rep.End = api.StateSucceeded, time.Now().UTC()
	if st := web.report(rep); st != http.StatusNoContent {
		t.Fatal(st)
	}
	if j, _ := f.env.DB.Job(ctx, rep.Job); j.State != "succeeded" || j.Error != "" {
		t.Fatalf("the agent's report did not replace the mark: %+v", j)
	}
}

// A host that never connects is missed on the server's clock, once per
// cadence, and status says so.
func TestMissedBackups(t *testing.T) {
	t.Parallel()
	var events []control.Event
	var mu sync.Mutex
	f := start(t)
	admin := f.host(t, "admin")
	f.host(t, "web1")
	f.pol.set("web1", "every 10s")
	ctl, err := control.New(control.Config{Store: f.env.DB, Policies: f.pol, PolicyKey: f.pol.pub(), Now: f.clk.now,
		Logger: slog.New(slog.DiscardHandler), Notify: func(e control.Event) { mu.Lock(); events = append(events, e); mu.Unlock() }})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	check := func(want int) {
		t.Helper()
		n, err := ctl.CheckMissed(ctx)
		if err != nil || n != want {
			t.Fatalf("CheckMissed: %d, %v; want %d", n, err, want)
		}
	}
	check(0) // starts watching
	f.clk.advance(15 * time.Second)
	check(0) // late, not missed: cadence 10 s + grace 10 s
	f.clk.advance(6 * time.Second)
	check(1)
	check(0)
	f.clk.advance(11 * time.Second)
	check(1) // still nothing: missed again one cadence later
	mu.Lock()
	if len(events) != 2 || events[0].Client != "web1" || !strings.Contains(events[0].Detail, "missed") {
		t.Fatalf("events %+v", events)
	}
	mu.Unlock()
	var st []api.HostStatus
	admin.do(http.MethodGet, api.StatusPath, nil, &st)
	for _, h := range st {
		if h.Client == "web1" && (h.RPO != api.RPOMissed || h.Online || h.LastBackup != nil) {
			t.Fatalf("status of a missed host: %+v", h)
		}
	}
	var list []api.JobInfo
	if admin.do(http.MethodGet, api.JobsPath+"?client=web1&state=missed", nil, &list); len(list) != 2 {
		t.Fatalf("missed jobs: %+v", list)
	}
}

// A stream whose first policy read fails (a busy database when a fleet
// connects at once) ends, so the agent reconnects and gets its policy,
// rather than staying up without one until the next change.
func TestStreamEndsWhenTheFirstPolicyReadFails(t *testing.T) {
	t.Parallel()
	f := start(t)
	f.pol.set("web1", "@daily")
	f.pol.mu.Lock()
	f.pol.fail["web1"] = errors.New("database is locked (5) (SQLITE_BUSY)")
	f.pol.mu.Unlock()
	h := f.host(t, "web1")
	h.open().ended(10 * time.Second)
	if m := h.open().next(10 * time.Second); m.Type != api.MsgPolicy {
		t.Fatalf("after reconnecting: %s message, want the policy", m.Type)
	}
}
