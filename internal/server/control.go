package server

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/coffer-backup/coffer/internal/fleet/api"
	"github.com/coffer-backup/coffer/internal/serverdb"
	"github.com/coffer-backup/coffer/internal/wire"
)

// fleetPrefix starts the paths of the fleet administration API.
const fleetPrefix = "/v1/fleet/"

// serveFleet serves the fleet's routes for an authenticated client: the
// agent's control stream and reports, and the jobs and status endpoints
// of the administration API. It reports whether r was one of them.
func (s *Server) serveFleet(w http.ResponseWriter, r *http.Request, client serverdb.Client) bool {
	ctl := s.cfg.Control
	switch {
	case r.RequestURI == api.StreamPath || r.RequestURI == api.ReportPath:
		if ctl == nil {
			wire.WriteError(w, fmt.Errorf("%w: this server runs no fleet control", wire.ErrNotImplemented))
			return true
		}
		if r.RequestURI == api.StreamPath {
			ctl.ServeStream(w, r, client.Name)
		} else {
			ctl.ServeReport(w, r, client.Name)
		}
		return true
	case strings.HasPrefix(r.URL.Path, fleetPrefix) && isControlPath(r.URL.Path):
		if ctl == nil || s.cfg.FleetAccess == nil {
			wire.WriteError(w, fmt.Errorf("%w: this server has no fleet administration", wire.ErrNotImplemented))
			return true
		}
		a, err := s.cfg.FleetAccess(r, client)
		if err != nil {
			wire.WriteError(w, err)
			return true
		}
		ctl.ServeAdmin(w, r, a)
		return true
	}
	return false
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
// if the server has counted it since it started.
func (s *Server) StoredBytes(client string) (int64, bool) {
	u := s.usageOf(client)
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.used, u.loaded
}
