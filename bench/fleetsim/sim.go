package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coffer-backup/coffer/internal/fleet/api"
	"github.com/coffer-backup/coffer/internal/fleet/policy"
	"github.com/coffer-backup/coffer/internal/pki"
	"github.com/coffer-backup/coffer/internal/tlspolicy"
)

// host is one simulated agent.
type host struct {
	i    int
	name string
	addr string
	pub  ed25519.PublicKey
	hc   *http.Client
	tr   *http.Transport

	sched chan time.Time // the first verified policy's next backup
	once  sync.Once
	gen   atomic.Uint64

	scheduled time.Time     // set by jobLoop
	agentSide time.Duration // running report's post completion - scheduled
	reported  bool
	err       error
}

// results are what the simulation saw.
type results struct {
	hosts      []*host
	connected  int
	reconnects int64
	scheduled  map[string]time.Time // per client
}

func loadHost(dir, addr string, i int, name string) (*host, error) {
	id, err := pki.LoadIdentity(dir)
	if err != nil {
		return nil, err
	}
	pub, err := policy.LoadPublicKey(dir)
	if err != nil {
		return nil, err
	}
	shost, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	conf := tlspolicy.Default().ClientConfig(id.TLSCertificate(), id.CAPool(), shost)
	protos := new(http.Protocols)
	protos.SetHTTP2(true)
	tr := &http.Transport{
		TLSClientConfig:     conf,
		ForceAttemptHTTP2:   true,
		Protocols:           protos,
		DialContext:         (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second, LocalAddr: sourceAddr(i)}).DialContext,
		TLSHandshakeTimeout: 30 * time.Second,
		IdleConnTimeout:     90 * time.Second,
		HTTP2:               &http.HTTP2Config{SendPingTimeout: 30 * time.Second, PingTimeout: 15 * time.Second},
	}
	return &host{i: i, name: name, addr: addr, pub: pub, tr: tr, hc: &http.Client{Transport: tr}, sched: make(chan time.Time, 1)}, nil
}

// simulate runs every host until each has reported its scheduled backup,
// or wait after the first scheduled time.
func simulate(ctx context.Context, ids, addr string, names []string, wait time.Duration) (*results, error) {
	res := &results{scheduled: map[string]time.Time{}}
	for i, name := range names {
		h, err := loadHost(filepath.Join(ids, name), addr, i, name)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		res.hosts = append(res.hosts, h)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var connected, reconnects atomic.Int64
	var streams, jobs sync.WaitGroup
	first := make(chan time.Time, len(res.hosts))
	t0 := time.Now()
	for _, h := range res.hosts {
		streams.Add(1)
		go func() {
			defer streams.Done()
			h.streamLoop(ctx, &connected, &reconnects)
		}()
		jobs.Add(1)
		go func() {
			defer jobs.Done()
			h.jobLoop(ctx, first)
		}()
	}
	done := make(chan struct{})
	go func() { jobs.Wait(); close(done) }()
	awaitJobs(ctx, cancel, done, first, wait)
	fmt.Fprintf(os.Stderr, "fleetsim: %d of %d hosts connected (%d reconnects); %s from start to the last report\n",
		connected.Load(), len(res.hosts), reconnects.Load(), time.Since(t0).Round(time.Millisecond))
	cancel()
	streams.Wait()
	for _, h := range res.hosts {
		h.tr.CloseIdleConnections()
		if !h.scheduled.IsZero() {
			res.scheduled[h.name] = h.scheduled
		}
	}
	res.connected, res.reconnects = int(connected.Load()), reconnects.Load()
	return res, nil
}

// awaitJobs waits until every job loop is done, or until wait after the
// first host fired (10 minutes if none ever does).
func awaitJobs(ctx context.Context, cancel context.CancelFunc, done <-chan struct{}, first <-chan time.Time, wait time.Duration) {
	select {
	case <-done:
		return
	case at := <-first:
		select {
		case <-done:
		case <-time.After(time.Until(at.Add(wait))):
			fmt.Fprintln(os.Stderr, "fleetsim: giving up on the hosts still waiting")
			cancel()
			<-done
		}
	case <-time.After(10 * time.Minute):
		fmt.Fprintln(os.Stderr, "fleetsim: no host fired within 10 minutes")
		cancel()
		<-done
	case <-ctx.Done():
		<-done
	}
}

// streamLoop holds the host's control stream, reconnecting with backoff
// as the agent does, until ctx ends.
func (h *host) streamLoop(ctx context.Context, connected, reconnects *atomic.Int64) {
	var counted bool
	up := func() {
		if !counted {
			counted = true
			connected.Add(1)
		}
	}
	for n := 0; ctx.Err() == nil; n++ {
		err := h.stream(ctx, up)
		if ctx.Err() != nil {
			return
		}
		if reconnects.Add(1) <= 10 {
			fmt.Fprintf(os.Stderr, "fleetsim: %s: stream: %v\n", h.name, err)
		}
		// The agent's backoff: 1 s doubling up to 60 s, a random point
		// in the upper half.
		d := min(time.Second<<min(n, 6), 60*time.Second)
		select {
		case <-ctx.Done():
			return
		case <-time.After(d/2 + mrand.N(d/2+1)):
		}
	}
}

// stream holds one stream request, calling up once the server answered 200.
func (h *host) stream(ctx context.Context, up func()) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+h.addr+api.StreamPath, nil)
	if err != nil {
		return err
	}
	req.Header.Set(api.HeaderAgentVersion, "fleetsim")
	req.Header.Set(api.HeaderPolicyGeneration, fmt.Sprint(h.gen.Load()))
	resp, err := h.hc.Do(req)
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("%s: %s", resp.Status, bytes.TrimSpace(msg))
	}
	up()
	br := bufio.NewReaderSize(resp.Body, api.MaxMessage+1)
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return err
		}
		m, err := api.DecodeMessage(bytes.TrimSuffix(line, []byte("\n")))
		if err != nil {
			return err
		}
		if m.Type == api.MsgPolicy {
			if err := h.onPolicy(m.Policy); err != nil {
				return err
			}
		}
	}
}

// onPolicy verifies a policy as the agent does and passes on its first
// repository's next backup time (the first policy only: a later one of
// the same content changes nothing here).
func (h *host) onPolicy(signed []byte) error {
	p, err := policy.Verify(signed, h.pub, h.name, h.gen.Load())
	if err != nil {
		return fmt.Errorf("policy refused: %w", err)
	}
	h.gen.Store(p.Generation)
	if len(p.Repositories) == 0 {
		return errors.New("policy without a repository")
	}
	s, t, err := p.Repositories[0].Timing()
	if err != nil {
		return err
	}
	next := t.In(time.Local).NextRun(s.In(time.Local), h.name, time.Time{}, time.Now())
	h.once.Do(func() { h.sched <- next })
	return nil
}

// jobLoop waits for the scheduled time, then reports the backup running
// and succeeded.
func (h *host) jobLoop(ctx context.Context, first chan<- time.Time) {
	var at time.Time
	select {
	case at = <-h.sched:
	case <-ctx.Done():
		return
	}
	h.scheduled = at
	select {
	case <-time.After(time.Until(at)):
	case <-ctx.Done():
		return
	}
	first <- at
	var b [16]byte
	_, _ = rand.Read(b[:])
	r := &api.Report{Job: api.NewID(b), Kind: api.KindBackup, Repository: "main", State: api.StateRunning, Scheduled: true, Start: time.Now().UTC()}
	if h.err = h.post(ctx, r); h.err != nil {
		return
	}
	h.agentSide = time.Since(at)
	r.State, r.End = api.StateSucceeded, time.Now().UTC()
	if h.err = h.post(ctx, r); h.err == nil {
		h.reported = true
	}
}

// post delivers one report, trying again a few times as the agent's
// queue would.
func (h *host) post(ctx context.Context, r *api.Report) error {
	body, err := api.EncodeReport(r)
	if err != nil {
		return err
	}
	for attempt := 1; ; attempt++ {
		err = h.postOnce(ctx, body)
		if err == nil || attempt == 5 || ctx.Err() != nil {
			return err
		}
		time.Sleep(time.Duration(attempt) * 200 * time.Millisecond)
	}
}

func (h *host) postOnce(ctx context.Context, body []byte) error {
	pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(pctx, http.MethodPost, "https://"+h.addr+api.ReportPath, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(api.HeaderAgentVersion, "fleetsim")
	resp, err := h.hc.Do(req)
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("report: %s: %s", resp.Status, bytes.TrimSpace(msg))
	}
	return nil
}

// agentSide returns the start delays as the agents saw them (the running
// report's answer), printing them and the first errors.
func (r *results) agentSide() []time.Duration {
	var ds []time.Duration
	shown := 0
	for _, h := range r.hosts {
		if h.reported {
			ds = append(ds, h.agentSide)
		}
		if h.err != nil && shown < 5 {
			shown++
			fmt.Fprintf(os.Stderr, "fleetsim: %s: %v\n", h.name, h.err)
		}
	}
	fmt.Fprintf(os.Stderr, "fleetsim: agent side: %d reported; running report answered p50 %s p99 %s max %s after the scheduled time\n",
		len(ds), percentile(ds, 50), percentile(ds, 99), percentile(ds, 100))
	return ds
}
