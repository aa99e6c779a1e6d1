package server

import (
	"context"
	"time"
)

// stamp records a snapshot object's arrival on the server clock. The
// object is stored already; a stamp that cannot be written is logged, and
// retention falls back to the arrival time the at-rest header seals (the
// same clock), so the upload still succeeds.
func (s *Server) stamp(ctx context.Context, client, repo, name string, received time.Time) {
	if _, err := s.cfg.DB.StampSnapshot(context.WithoutCancel(ctx), client, repo, name, received); err != nil {
		s.log.Error("stamp snapshot", "client", client, "repo", repo, "name", name, "err", err)
	}
}
