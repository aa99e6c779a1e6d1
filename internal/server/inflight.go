package server

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/coffer-backup/coffer/internal/serverdb"
)

// request is one authenticated request in flight, which a revocation of
// its client ends.
type request struct {
	client  string
	cancel  context.CancelCauseFunc
	rc      *http.ResponseController
	aborted bool
}

// track registers a request of client until done is called (before the
// handler returns): its context is cancelled, and its connection's read
// and write deadlines moved to now, when the client is revoked, so a
// stalled upload or a long download ends at once instead of finishing.
func (s *Server) track(ctx context.Context, w http.ResponseWriter, client string) (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(ctx)
	req := &request{client: client, cancel: cancel, rc: http.NewResponseController(w)}
	s.runMu.Lock()
	s.running[req] = struct{}{}
	s.runMu.Unlock()
	return ctx, func() {
		s.runMu.Lock()
		delete(s.running, req)
		s.runMu.Unlock()
		cancel(nil)
	}
}

// abortRevoked ends the requests in flight of every client that clients
// (the state just loaded) shows revoked as a whole. Superseded
// certificates (a renewal) are refused on new requests only: a renewal
// must not break the transfers of the client that renewed.
func (s *Server) abortRevoked(clients map[string]serverdb.Client) {
	s.runMu.Lock()
	defer s.runMu.Unlock()
	now := time.Now()
	for req := range s.running {
		c, ok := clients[req.client]
		if req.aborted || !ok || !c.Revoked() {
			continue
		}
		req.aborted = true
		req.cancel(fmt.Errorf("%w: %s", ErrClientRevoked, req.client))
		// Errors mean the connection cannot take deadlines or is gone.
		_ = req.rc.SetReadDeadline(now)
		_ = req.rc.SetWriteDeadline(now)
		s.log.Warn("request of a revoked client ended", "client", req.client)
	}
}
