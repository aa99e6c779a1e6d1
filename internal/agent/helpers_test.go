package agent

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coffer-backup/coffer/internal/fleet/api"
	"github.com/coffer-backup/coffer/internal/fleet/policy"
	"github.com/coffer-backup/coffer/internal/pki"
)

// fleet is a TLS test server speaking the control stream: it requires the
// agent's client certificate from its CA, sends the current policy first,
// then what the test pushes, and keeps the reports posted.
type fleet struct {
	t      *testing.T
	srv    *httptest.Server
	ca     *pki.CA
	priv   ed25519.PrivateKey
	client string
	dir    string // the agent's identity directory

	mu       sync.Mutex
	signed   []byte // policy sent at connect; nil: none
	push     chan *api.Message
	reports  []*api.Report
	connects int
	headers  http.Header
	silent   bool // stream sends nothing, not even pings
	down     bool // answer 503 to everything
	changed  chan struct{}
}

func newFleet(t *testing.T, client string) *fleet {
	t.Helper()
	now := time.Now()
	ca, err := pki.NewCA("coffer test CA", now)
	if err != nil {
		t.Fatal(err)
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	f := &fleet{t: t, ca: ca, priv: priv, client: client, dir: t.TempDir(), push: make(chan *api.Message, 16), changed: make(chan struct{}, 1)}
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+api.StreamPath, f.stream)
	mux.HandleFunc("POST "+api.ReportPath, f.report)
	f.srv = httptest.NewUnstartedServer(mux)
	kp, err := ca.IssueServer([]string{"127.0.0.1"}, now)
	if err != nil {
		t.Fatal(err)
	}
	f.srv.TLS = &tls.Config{Certificates: []tls.Certificate{kp.TLSCertificate(ca.Cert)}, ClientCAs: ca.Pool(),
		ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12}
	f.srv.EnableHTTP2 = true
	f.srv.StartTLS()
	t.Cleanup(f.srv.Close)
	f.writeIdentity(f.dir, client)
	return f
}

// writeIdentity enrolls name into dir: key, certificate, CA, server
// address and the policy key, as coffer enroll leaves them.
func (f *fleet) writeIdentity(dir, name string) {
	t := f.t
	key, err := pki.NewClientKey()
	if err != nil {
		t.Fatal(err)
	}
	csr, err := pki.NewCSR(key, name)
	if err != nil {
		t.Fatal(err)
	}
	der, _, err := f.ca.SignClient(csr, name, 24*time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, err := pki.EncodeKeyPEM(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := pki.WriteIdentity(dir, keyPEM, pki.EncodeCertPEM(der), f.ca.CertPEM()); err != nil {
		t.Fatal(err)
	}
	if err := WriteServer(dir, strings.TrimPrefix(f.srv.URL, "https://")); err != nil {
		t.Fatal(err)
	}
	if err := policy.WritePublicKey(dir, f.priv.Public().(ed25519.PublicKey)); err != nil {
		t.Fatal(err)
	}
}

func (f *fleet) pub() ed25519.PublicKey { return f.priv.Public().(ed25519.PublicKey) }

// sign signs p with the fleet's policy key.
func (f *fleet) sign(p *policy.Policy) []byte {
	f.t.Helper()
	b, err := policy.Sign(f.priv, p)
	if err != nil {
		f.t.Fatal(err)
	}
	return b
}

// setPolicy makes p the policy sent at connect and pushes it down an
// open stream.
func (f *fleet) setPolicy(p *policy.Policy) {
	b := f.sign(p)
	f.mu.Lock()
	f.signed = b
	f.mu.Unlock()
	f.send(&api.Message{Type: api.MsgPolicy, Time: time.Now(), Policy: json.RawMessage(strings.TrimSpace(string(b)))})
}

func (f *fleet) send(m *api.Message) {
	select {
	case f.push <- m:
	default:
		f.t.Error("push channel full")
	}
}

func (f *fleet) stream(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	if f.down {
		f.mu.Unlock()
		http.Error(w, "down", http.StatusServiceUnavailable)
		return
	}
	f.connects++
	f.headers = r.Header.Clone()
	signed, silent := f.signed, f.silent
	f.mu.Unlock()
	f.notify()
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	fl := w.(http.Flusher)
	fl.Flush()
	if silent {
		<-r.Context().Done()
		return
	}
	if signed != nil {
		f.write(w, &api.Message{Type: api.MsgPolicy, Time: time.Now(), Policy: json.RawMessage(strings.TrimSpace(string(signed)))})
	}
	ping := time.NewTicker(200 * time.Millisecond)
	defer ping.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case m := <-f.push:
			f.write(w, m)
		case <-ping.C:
			f.write(w, &api.Message{Type: api.MsgPing, Time: time.Now()})
		}
	}
}

func (f *fleet) write(w http.ResponseWriter, m *api.Message) {
	b, err := api.EncodeMessage(m)
	if err != nil {
		f.t.Errorf("encode message: %v", err)
		return
	}
	_, _ = w.Write(b)
	w.(http.Flusher).Flush()
}

func (f *fleet) report(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, api.MaxMessage+1))
	rep, err := api.DecodeReport(body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	f.mu.Lock()
	if f.down {
		f.mu.Unlock()
		http.Error(w, "down", http.StatusServiceUnavailable)
		return
	}
	f.reports = append(f.reports, rep)
	f.mu.Unlock()
	f.notify()
	w.WriteHeader(http.StatusNoContent)
}

func (f *fleet) notify() {
	select {
	case f.changed <- struct{}{}:
	default:
	}
}

func (f *fleet) setDown(down bool) {
	f.mu.Lock()
	f.down = down
	f.mu.Unlock()
	if down {
		f.srv.CloseClientConnections()
	}
}

// waitReport waits up to d for a report matching match and returns it.
func (f *fleet) waitReport(d time.Duration, what string, match func(*api.Report) bool) *api.Report {
	f.t.Helper()
	deadline := time.After(d)
	for {
		f.mu.Lock()
		for _, r := range f.reports {
			if match(r) {
				f.mu.Unlock()
				return r
			}
		}
		f.mu.Unlock()
		select {
		case <-f.changed:
		case <-time.After(50 * time.Millisecond):
		case <-deadline:
			f.mu.Lock()
			defer f.mu.Unlock()
			for _, r := range f.reports {
				f.t.Logf("report: %+v", *r)
			}
			f.t.Fatalf("no %s report within %s", what, d)
			return nil
		}
	}
}

func (f *fleet) allReports() []*api.Report {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]*api.Report(nil), f.reports...)
}

func (f *fleet) connections() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.connects
}

// testPolicy is a policy with one repository backing up paths into a
// local repository at loc, on schedule.
func testPolicy(client string, gen uint64, loc, sched string, paths ...string) *policy.Policy {
	return &policy.Policy{Version: policy.Version, Client: client, Generation: gen, Issued: time.Now().UTC().Truncate(time.Second),
		Repositories: []policy.Repository{{Name: "main", Location: loc, Paths: paths, Schedule: sched}}}
}

// startAgent runs an agent on f's identity until the test ends; stop
// stops it and returns when Run returned, with how long that took.
func startAgent(t *testing.T, f *fleet, mod func(*Config)) (stop func() time.Duration) {
	t.Helper()
	cfg := Config{IdentityDir: f.dir, Version: "test", MinBackoff: 50 * time.Millisecond, MaxBackoff: 200 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	if mod != nil {
		mod(&cfg)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, cfg) }()
	var once sync.Once
	var took time.Duration
	stop = func() time.Duration {
		once.Do(func() {
			start := time.Now()
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run: %v", err)
				}
			case <-time.After(15 * time.Second):
				t.Error("Run did not return")
			}
			took = time.Since(start)
		})
		return took
	}
	t.Cleanup(func() { stop() })
	return stop
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func jobMsg(j *api.Job) *api.Message {
	j.Created = time.Now()
	return &api.Message{Type: api.MsgJob, Time: time.Now(), Job: j}
}
