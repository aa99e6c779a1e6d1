package server

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/coffer-backup/coffer/internal/fleet/api"
	"github.com/coffer-backup/coffer/internal/pki"
	"github.com/coffer-backup/coffer/internal/server/fleet"
	"github.com/coffer-backup/coffer/internal/storage"
	"github.com/coffer-backup/coffer/internal/wire"
)

// agentPrefix is where the agents' control connection lives.
const agentPrefix = "/v1/agent/"

// serveFleet serves the fleet's routes (everything under /v1/fleet/ and
// /v1/agent/) for an authenticated principal, with the caller in the
// request's context (fleet.CallerFrom; a host's name also as ClientName):
// the agent's control stream and reports (hosts only), the jobs and status
// endpoints of the administration API (through Config.FleetAccess), and
// the rest of that API (users, groups, policies: Config.Fleet).
func (s *Server) serveFleet(w http.ResponseWriter, r *http.Request, who principal) {
	ctx := fleet.WithCaller(r.Context(), fleet.Caller{Kind: who.kind, Name: who.name, Serial: who.serial})
	if who.kind == pki.KindClient {
		ctx = context.WithValue(ctx, clientKey{}, who.name)
	}
	r = r.WithContext(ctx)
	ctl := s.cfg.Control
	switch {
	case r.RequestURI == api.StreamPath || r.RequestURI == api.ReportPath:
		if who.kind != pki.KindClient {
			wire.WriteError(w, fmt.Errorf("%w: user %s: the control connection is a host's", storage.ErrForbidden, who.name))
			return
		}
		if ctl == nil {
			wire.WriteError(w, fmt.Errorf("%w: this server runs no fleet control", wire.ErrNotImplemented))
			return
		}
		if r.RequestURI == api.StreamPath {
			ctl.ServeStream(w, r, who.name)
		} else {
			ctl.ServeReport(w, r, who.name)
		}
	case strings.HasPrefix(r.URL.Path, api.AdminPrefix) && isControlPath(r.URL.Path):
		if ctl == nil || s.cfg.FleetAccess == nil {
			wire.WriteError(w, fmt.Errorf("%w: this server has no fleet administration", wire.ErrNotImplemented))
			return
		}
		a, err := s.cfg.FleetAccess(r)
		if err != nil {
			wire.WriteError(w, err)
			return
		}
		ctl.ServeAdmin(w, r, a)
	case s.cfg.Fleet != nil && strings.HasPrefix(r.URL.Path, api.AdminPrefix):
		r.Body = http.MaxBytesReader(w, r.Body, api.MaxAdminRequest)
		s.cfg.Fleet.ServeHTTP(w, r)
	default:
		wire.WriteError(w, fmt.Errorf("%w: %s", wire.ErrNoRoute, r.URL.Path))
	}
}

// isControlPath reports whether p is one of control's administration
// paths (the other /v1/fleet/ paths are the fleet's own).
func isControlPath(p string) bool {
	return p == api.StatusPath || p == api.JobsPath || strings.HasPrefix(p, api.JobsPath+"/") || p == api.RunNowPath || p == api.RestorePath
}

// NoteContact records a request of client for its last contact (written
// at the next refresh).
func (s *Server) NoteContact(client string) { s.noteContact(client) }

// StoredBytes returns what client stores as charged against its quota,
// if it is counted: in a state directory, since the server started; in a
// bucket, by any server sharing the database.
func (s *Server) StoredBytes(client string) (int64, bool) {
	u := s.usageOf(client)
	u.mu.Lock()
	loaded := u.loaded
	u.mu.Unlock()
	if !loaded && !s.store.InBucket() {
		return 0, false // not counted since the server started
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	n, err := s.cfg.DB.Usage(ctx, client)
	return n.Charged, err == nil
}
