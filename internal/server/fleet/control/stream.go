package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/coffer-backup/coffer/internal/fleet/api"
	"github.com/coffer-backup/coffer/internal/serverdb"
)

// maxVersion bounds the agent version a stream announces.
const maxVersion = 64

// session is what one stream has sent.
type session struct {
	client     string
	w          http.ResponseWriter
	rc         *http.ResponseController
	generation uint64          // of the policy sent last, 0 for none
	jobs       map[string]bool // ordered jobs sent
	cancels    map[string]bool // cancellations sent
}

// ServeStream serves GET api.StreamPath for client, an authenticated host
// (the caller checked its certificate and ends the request's context when
// the host is revoked). It writes the host's current policy first (or a
// ping when it has none), then the jobs queued for it and the
// cancellations pending, then a ping every PingInterval and whatever
// changes as soon as it is committed, until the request ends, the host
// opens another stream, or a write fails.
func (c *Control) ServeStream(w http.ResponseWriter, r *http.Request, client string) {
	if r.Method != http.MethodGet {
		writeError(w, fmt.Errorf("%w: %s takes GET", errMethod, api.StreamPath))
		return
	}
	ctx, cancel := context.WithCancelCause(r.Context())
	defer cancel(nil)
	rc := http.NewResponseController(w)
	// The stream outlives the server's read timeout: on HTTP/1.1 its expiry
	// would end the request.
	_ = rc.SetReadDeadline(time.Time{})
	st := c.hub.Attach(client, c.now(), cancel)
	defer c.hub.Detach(st)
	defer c.seen(client)
	conn := serverdb.AgentConn{Client: client, Version: agentVersion(r.Header.Get(api.HeaderAgentVersion)), Connected: c.now()}
	if err := c.agents.update(ctx, c.cfg.Store.AgentsConnected, conn); err != nil {
		c.log.Warn("record agent connection", "client", client, "err", err)
	}
	h := w.Header()
	h.Set("Content-Type", "application/x-ndjson")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	s := &session{client: client, w: w, rc: rc, jobs: map[string]bool{}, cancels: map[string]bool{}}
	err := c.runStream(ctx, st, s)
	c.log.Debug("stream ended", "client", client, "err", err, "cause", context.Cause(ctx))
}

func (c *Control) runStream(ctx context.Context, st *Stream, s *session) error {
	if err := c.sync(ctx, s, true); err != nil {
		return err
	}
	ping := time.NewTicker(c.cfg.PingInterval)
	defer ping.Stop()
	for {
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-st.Wake():
			if err := c.sync(ctx, s, false); err != nil {
				return err
			}
		case <-ping.C:
			if err := c.send(ctx, s, &api.Message{Type: api.MsgPing}); err != nil {
				return err
			}
		}
	}
}

// sync sends what the host does not have yet: a newer policy, queued jobs
// and pending cancellations. The first sync always sends something, so the
// agent knows the stream is up.
func (c *Control) sync(ctx context.Context, s *session, first bool) error {
	sent := false
	cp, ok, err := c.policyOf(ctx, s.client)
	if err != nil {
		c.log.Error("read a host's policy for its stream", "client", s.client, "err", err)
		if first {
			// A stream without its policy would wait for the next change;
			// ended, the agent reconnects with its backoff and reads again.
			return err
		}
	}
	if ok && (first || cp.generation > s.generation) {
		if err := c.send(ctx, s, &api.Message{Type: api.MsgPolicy, Policy: json.RawMessage(cp.signed)}); err != nil {
			return err
		}
		s.generation, sent = cp.generation, true
	}
	n, err := c.sendJobs(ctx, s)
	if err != nil {
		return err
	}
	if first && !sent && n == 0 {
		return c.send(ctx, s, &api.Message{Type: api.MsgPing})
	}
	return nil
}

// sendJobs sends the host's queued ordered jobs this stream has not sent,
// oldest first, and the cancellations it has not sent.
func (c *Control) sendJobs(ctx context.Context, s *session) (int, error) {
	queued, err := c.cfg.Store.Jobs(ctx, serverdb.JobFilter{Client: s.client, States: []string{string(api.StateQueued)}, Ordered: true, Oldest: true})
	if err != nil {
		c.log.Error("read queued jobs for a stream", "client", s.client, "err", err)
		return 0, nil // the next wake-up or reconnect tries again
	}
	n := 0
	for _, j := range queued {
		if s.jobs[j.ID] || j.CancelRequested {
			continue
		}
		var job api.Job
		if err := json.Unmarshal(j.Spec, &job); err != nil {
			c.log.Error("stored job does not decode", "job", j.ID, "err", err)
			continue
		}
		if err := c.send(ctx, s, &api.Message{Type: api.MsgJob, Job: &job}); err != nil {
			return n, err
		}
		s.jobs[j.ID], n = true, n+1
	}
	cancels, err := c.cfg.Store.Jobs(ctx, serverdb.JobFilter{Client: s.client, CancelRequested: true, States: []string{string(api.StateQueued), string(api.StateRunning), string(api.StateCancelled)}, Oldest: true})
	if err != nil {
		c.log.Error("read cancellations for a stream", "client", s.client, "err", err)
		return n, nil
	}
	for _, j := range cancels {
		// A job cancelled before it started is told only to a stream that
		// sent it; a running one to every stream until the agent reports.
		if s.cancels[j.ID] || j.State == string(api.StateCancelled) && !s.jobs[j.ID] {
			continue
		}
		if err := c.send(ctx, s, &api.Message{Type: api.MsgCancel, Cancel: j.ID}); err != nil {
			return n, err
		}
		s.cancels[j.ID], n = true, n+1
	}
	return n, nil
}

// send writes one message and flushes it, within WriteTimeout.
func (c *Control) send(ctx context.Context, s *session, m *api.Message) error {
	if err := ctx.Err(); err != nil {
		return context.Cause(ctx)
	}
	m.Time = c.now().UTC()
	line, err := api.EncodeMessage(m)
	if err != nil {
		return err
	}
	_ = s.rc.SetWriteDeadline(time.Now().Add(c.cfg.WriteTimeout))
	if _, err := s.w.Write(line); err != nil {
		return err
	}
	if err := s.rc.Flush(); err != nil {
		return err
	}
	c.seen(s.client)
	return nil
}

func (c *Control) seen(client string) {
	if c.cfg.Seen != nil {
		c.cfg.Seen(client)
	}
}

// agentVersion keeps at most maxVersion printable ASCII characters of what
// an agent announced.
func agentVersion(v string) string {
	out := make([]byte, 0, min(len(v), maxVersion))
	for i := 0; i < len(v) && len(out) < maxVersion; i++ {
		if v[i] > ' ' && v[i] < 0x7f {
			out = append(out, v[i])
		}
	}
	return string(out)
}

var errMethod = errors.New("method not allowed")
