package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"sync"
	"time"

	"github.com/coffer-backup/coffer/internal/pki"
	"github.com/coffer-backup/coffer/internal/serverdb"
	"github.com/coffer-backup/coffer/internal/tlspolicy"
	"github.com/coffer-backup/coffer/internal/wire"
)

// Reasons a certificate is refused on a request or a handshake.
var (
	ErrNoCertificate = errors.New("no verified client certificate")
	ErrCertExpired   = errors.New("client certificate expired or not yet valid")
	ErrNotEnrolled   = errors.New("client is not enrolled")
	ErrClientRevoked = errors.New("client is revoked")
	ErrStaleState    = errors.New("revocation state could not be refreshed")
)

type clientKey struct{}

// ClientName returns the authenticated client of a request, set by the
// server's authentication before any handler runs.
func ClientName(ctx context.Context) (string, bool) {
	name, ok := ctx.Value(clientKey{}).(string)
	return name, ok
}

// Refresh reloads clients and revocations from the database now.
// Refreshes may overlap (the background loop, an enrollment, a test); each
// is numbered before it reads, and its result replaces the server's state
// only if no refresh started later has replaced it already, so a slow read
// can never bring back a revoked client. The client map and the revocation
// list change together.
func (s *Server) Refresh(ctx context.Context) error {
	s.mu.Lock()
	s.refreshStarted++
	seq := s.refreshStarted
	s.mu.Unlock()
	revs, err := s.cfg.DB.Revocations(ctx)
	if err != nil {
		return fmt.Errorf("load revocations: %w", err)
	}
	clients, err := s.cfg.DB.Clients(ctx)
	if err != nil {
		return fmt.Errorf("load clients: %w", err)
	}
	serials := make([]*big.Int, len(revs))
	for i, r := range revs {
		serials[i] = r.Serial
	}
	m := make(map[string]serverdb.Client, len(clients))
	for _, c := range clients {
		m[c.Name] = c
	}
	if s.apply(seq, serials, m) {
		s.abortRevoked(m)
	}
	return nil
}

// apply puts the result of refresh seq in place unless a later one is
// there already, and reports whether it did.
func (s *Server) apply(seq uint64, serials []*big.Int, clients map[string]serverdb.Client) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if seq < s.refreshApplied {
		return false // a newer read is in place
	}
	s.refreshApplied = seq
	s.revs.Replace(serials)
	s.clients = clients
	s.lastRefresh = s.now()
	return true
}

func (s *Server) refreshLoop() {
	defer close(s.stopped)
	t := time.NewTicker(s.cfg.RefreshInterval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*s.cfg.RefreshInterval)
		if err := s.Refresh(ctx); err != nil {
			s.log.Error("refresh from database failed", "err", err)
		}
		s.flushContacts(ctx)
		cancel()
	}
}

// noteContact remembers a request of client for the next flush, which the
// refresh loop runs every RefreshInterval: the database's last contact is
// at most one interval behind, at one write per active client per interval.
func (s *Server) noteContact(client string) {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if now.After(s.contacts[client]) {
		s.contacts[client] = now
	}
}

// flushContacts writes the last-contact times seen since the last flush,
// in one transaction; on failure they wait for the next flush.
func (s *Server) flushContacts(ctx context.Context) {
	s.mu.Lock()
	pending := s.contacts
	s.contacts = map[string]time.Time{}
	s.mu.Unlock()
	if err := s.cfg.DB.TouchAll(ctx, pending); err != nil {
		s.log.Warn("record last contacts; trying again at the next flush", "clients", len(pending), "err", err)
		s.mu.Lock()
		for name, at := range pending {
			if at.After(s.contacts[name]) {
				s.contacts[name] = at
			}
		}
		s.mu.Unlock()
	}
}

// principal is the authenticated certificate of a request: a host with
// its client record, or a person (a fleet user).
type principal struct {
	kind   string // pki.KindClient or pki.KindUser
	name   string
	serial *big.Int
	client serverdb.Client // hosts only
}

// slot names the principal for per-caller limits and request tracking;
// hosts and users have separate name spaces.
func (p principal) slot() string {
	if p.kind == pki.KindUser {
		return serverdb.UserRevocationName(p.name)
	}
	return p.name
}

// checkCert decides whether a verified certificate may be used now and
// returns its principal. It runs on every request and in VerifyConnection.
func (s *Server) checkCert(ctx context.Context, cert *x509.Certificate) (principal, error) {
	now := s.now()
	if now.Before(cert.NotBefore) || now.After(cert.NotAfter) {
		return principal{}, ErrCertExpired
	}
	kind, name, err := pki.PrincipalOf(cert)
	if err != nil {
		return principal{}, err
	}
	if err := wire.ValidateClientName(name); err != nil {
		return principal{}, err
	}
	s.mu.Lock()
	if err := s.revs.Check(cert); err != nil {
		s.mu.Unlock()
		return principal{}, err
	}
	stale := now.Sub(s.lastRefresh) > max(staleFactor*s.cfg.RefreshInterval, minStale)
	s.mu.Unlock()
	if stale {
		return principal{}, ErrStaleState
	}
	p := principal{kind: kind, name: name, serial: cert.SerialNumber}
	if kind == pki.KindUser {
		return p, s.checkUser(ctx, name, cert.SerialNumber)
	}
	p.client, err = s.checkClient(ctx, name)
	return p, err
}

// checkUser accepts a person's certificate only while the user exists and
// the certificate is the one it enrolled with.
func (s *Server) checkUser(ctx context.Context, name string, serial *big.Int) error {
	u, err := s.cfg.DB.User(ctx, name)
	if errors.Is(err, serverdb.ErrNotFound) {
		return fmt.Errorf("%w: user %s", ErrNotEnrolled, name)
	}
	if err != nil {
		return err
	}
	if u.CertSerial == nil || u.CertSerial.Cmp(serial) != 0 {
		return fmt.Errorf("%w: user %s: not its current certificate", ErrClientRevoked, name)
	}
	return nil
}

// checkClient returns the record of an enrolled, unrevoked host.
func (s *Server) checkClient(ctx context.Context, name string) (serverdb.Client, error) {
	s.mu.Lock()
	c, ok := s.clients[name]
	s.mu.Unlock()
	if !ok {
		// Enrolled since the last refresh, or not at all.
		var err error
		c, err = s.cfg.DB.Client(ctx, name)
		if errors.Is(err, serverdb.ErrNotFound) {
			return serverdb.Client{}, fmt.Errorf("%w: %s", ErrNotEnrolled, name)
		}
		if err != nil {
			return serverdb.Client{}, err
		}
		s.mu.Lock()
		if _, again := s.clients[name]; !again {
			s.clients[name] = c
		}
		s.mu.Unlock()
	}
	if c.Revoked() {
		return serverdb.Client{}, fmt.Errorf("%w: %s", ErrClientRevoked, name)
	}
	return c, nil
}

// VerifyConnection is the tls.Config.VerifyConnection hook of the server
// (pass it to tlspolicy.Policy.ServerConfig): crypto/tls runs it on full
// and resumed handshakes, after chain verification, so a revoked, expired
// or unknown client is refused before it sends a request. Requests are
// checked again, so revocation also ends connections opened before it.
func (s *Server) VerifyConnection(cs tls.ConnectionState) error {
	if len(cs.VerifiedChains) == 0 || len(cs.VerifiedChains[0]) == 0 {
		if len(cs.PeerCertificates) == 0 {
			return nil // an enrollment connection; the handler decides
		}
		return ErrNoCertificate
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	p, err := s.checkCert(ctx, cs.VerifiedChains[0][0])
	if err == nil && p.kind == pki.KindUser && s.cfg.Login != nil {
		s.cfg.Login(ctx, p.name, p.serial)
	}
	if serverdb.Unavailable(err) {
		// The chain verified but the database cannot say whether the
		// name is enrolled: finish the handshake, and let authenticate,
		// which checks every request again, answer 503 instead of a
		// certificate alert the client would read as a revocation.
		return nil
	}
	return err
}

// authenticate runs before anything else of a request is looked at: no
// verified certificate, or one that is expired, revoked or not enrolled,
// gets 401 and a refusal record.
func (s *Server) authenticate(w http.ResponseWriter, r *http.Request) (principal, bool) {
	var err error
	var c principal
	if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 || len(r.TLS.VerifiedChains[0]) == 0 {
		err = ErrNoCertificate
	} else {
		c, err = s.checkCert(r.Context(), r.TLS.VerifiedChains[0][0])
	}
	if err == nil {
		return c, true
	}
	kind := tlspolicy.KindRejected
	switch {
	case errors.Is(err, ErrNoCertificate):
		kind = tlspolicy.KindNoCertificate
	case errors.Is(err, ErrCertExpired), errors.Is(err, pki.ErrInvalidName):
		kind = tlspolicy.KindBadCert
	}
	if serverdb.Unavailable(err) {
		s.log.Error("request refused: the state database cannot be reached to check the caller", "peer", r.RemoteAddr, "err", err)
		wire.WriteError(w, fmt.Errorf("%w: %w", wire.ErrUnavailable, serverdb.ErrUnavailable))
		return principal{}, false
	}
	if errors.Is(err, ErrStaleState) {
		s.log.Error("refusing requests: revocation state is stale")
		wire.WriteError(w, fmt.Errorf("%w: %v", wire.ErrUnavailable, err))
		return principal{}, false
	}
	s.refuse.record(tlspolicy.RefusalRecord{Time: s.now().UTC(), Peer: r.RemoteAddr, Kind: kind, Reason: "request: " + err.Error()})
	wire.WriteError(w, fmt.Errorf("%w: %v", wire.ErrUnauthenticated, err))
	return principal{}, false
}

// refusalLimiter writes at most perMinute refusal records a minute and
// folds the rest into one "suppressed" record, so a flood of bad requests
// cannot fill the log.
type refusalLimiter struct {
	log       tlspolicy.RefusalLog
	perMinute int

	mu         sync.Mutex
	window     time.Time
	written    int
	suppressed int
}

func newRefusalLimiter(log tlspolicy.RefusalLog, perMinute int) *refusalLimiter {
	return &refusalLimiter{log: log, perMinute: perMinute}
}

func (l *refusalLimiter) record(r tlspolicy.RefusalRecord) {
	win := r.Time.Truncate(time.Minute)
	l.mu.Lock()
	var flush *tlspolicy.RefusalRecord
	if !win.Equal(l.window) {
		if l.suppressed > 0 {
			flush = &tlspolicy.RefusalRecord{Time: l.window.Add(time.Minute - time.Nanosecond), Kind: tlspolicy.KindSuppressed, Reason: "request refusals over the per-minute limit", Count: l.suppressed}
		}
		l.window, l.written, l.suppressed = win, 0, 0
	}
	write := l.written < l.perMinute
	if write {
		l.written++
	} else {
		l.suppressed++
	}
	l.mu.Unlock()
	if flush != nil {
		_ = l.log.LogRefusal(*flush)
	}
	if write {
		_ = l.log.LogRefusal(r)
	}
}
