// Package enrollment is the server's side of enrollment and renewal: it
// redeems one-time tokens, signs client certificates and records clients.
package enrollment

import (
	"context"
	"crypto/ed25519"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/coffer-backup/coffer/internal/pki"
	"github.com/coffer-backup/coffer/internal/pki/enroll"
	"github.com/coffer-backup/coffer/internal/server/state"
	"github.com/coffer-backup/coffer/internal/serverdb"
	"github.com/coffer-backup/coffer/internal/storage"
	"github.com/coffer-backup/coffer/internal/wire"
)

// Enroller issues client certificates: it answers POST /v1/enroll (a
// one-time token and a CSR) as server.Config.Enroll and POST /v1/renew (a
// CSR from an authenticated client) as server.Config.Renew. Every refusal is logged
// and recorded in the audit log. The server rate-limits enrollment.
type Enroller struct {
	CA *pki.CA
	DB serverdb.DB
	// ClientTTL is the lifetime of issued certificates (default
	// state.DefaultClientCertTTL).
	ClientTTL time.Duration
	// Changed, if set, is called after a client record changed, so the
	// server sees it at once (server.Server.Refresh).
	Changed func(context.Context) error
	// PolicyPub, if set, is the server's policy signing key, sent in every
	// answer for the client to pin (policy.pub in its identity directory).
	PolicyPub ed25519.PublicKey
	Logger    *slog.Logger
	Now       func() time.Time
}

func (e *Enroller) now() time.Time {
	if e.Now != nil {
		return e.Now()
	}
	return time.Now()
}

func (e *Enroller) log() *slog.Logger {
	if e.Logger != nil {
		return e.Logger
	}
	return slog.Default()
}

func (e *Enroller) ttl() time.Duration {
	if e.ClientTTL > 0 {
		return e.ClientTTL
	}
	return state.DefaultClientCertTTL
}

// refuse logs a refused enrollment or renewal, records it in the audit log
// and answers with err's status.
func (e *Enroller) refuse(ctx context.Context, w http.ResponseWriter, r *http.Request, op, client string, err error) {
	e.log().Warn(op+" refused", "peer", r.RemoteAddr, "client", client, "err", err)
	ev := serverdb.Event{Time: e.now(), Client: client, Action: serverdb.ActionEnrollRefused, Detail: clipDetail(op + " from " + r.RemoteAddr + ": " + err.Error())}
	if lerr := e.DB.LogEvent(ctx, ev); lerr != nil {
		e.log().Error("audit log", "err", lerr)
	}
	wire.WriteError(w, classifyEnrollError(err))
}

func clipDetail(s string) string {
	if len(s) > 512 {
		return s[:512]
	}
	return s
}

// codedError answers with its sentinel's status but its own message.
type codedError struct{ sentinel, err error }

func (c codedError) Error() string   { return c.err.Error() }
func (c codedError) Unwrap() []error { return []error{c.sentinel, c.err} }

// classifyEnrollError maps enrollment errors onto protocol errors: a bad
// request is 400, a token or certificate that may not be used 403.
func classifyEnrollError(err error) error {
	var mbe *http.MaxBytesError
	switch {
	case errors.Is(err, pki.ErrTokenMalformed), errors.Is(err, pki.ErrBadCSR), errors.Is(err, enroll.ErrMalformed), errors.Is(err, pki.ErrInvalidName):
		return codedError{wire.ErrBadRequest, err}
	case errors.Is(err, pki.ErrTokenUnknown), errors.Is(err, pki.ErrTokenUsed), errors.Is(err, pki.ErrTokenExpired), errors.Is(err, pki.ErrTokenWrongCA),
		errors.Is(err, serverdb.ErrRevoked), errors.Is(err, serverdb.ErrSuperseded), errors.Is(err, serverdb.ErrNotFound):
		return codedError{storage.ErrForbidden, err}
	case errors.Is(err, wire.ErrTooLarge), errors.Is(err, wire.ErrMethod), errors.Is(err, wire.ErrUnauthenticated):
		return err
	case errors.As(err, &mbe):
		return codedError{wire.ErrTooLarge, err}
	case serverdb.Unavailable(err):
		return codedError{wire.ErrUnavailable, serverdb.ErrUnavailable}
	}
	return codedError{wire.ErrServer, err}
}

func readBody(r *http.Request) ([]byte, error) {
	if r.Method != http.MethodPost {
		return nil, wire.ErrMethod
	}
	b, err := io.ReadAll(io.LimitReader(r.Body, enroll.MaxBody+1))
	if err != nil {
		return nil, err
	}
	if len(b) > enroll.MaxBody {
		return nil, fmt.Errorf("%w: body over %d bytes", wire.ErrTooLarge, enroll.MaxBody)
	}
	return b, nil
}

// ServeHTTP answers an enrollment: parse, redeem the token (single use),
// sign, record the client, answer with the certificate and the CA.
func (e *Enroller) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	body, err := readBody(r)
	if err != nil {
		e.refuse(ctx, w, r, "enrollment", "", err)
		return
	}
	tok, csr, err := enroll.ParseRequest(body)
	if err != nil {
		e.refuse(ctx, w, r, "enrollment", "", err)
		return
	}
	now := e.now()
	res, err := e.CA.Enroll(ctx, e.DB.Tokens(), tok, csr, e.ttl(), now)
	if err != nil {
		e.refuse(ctx, w, r, "enrollment", tok.ClientName, err)
		return
	}
	cert, err := x509.ParseCertificate(res.CertDER)
	if err != nil {
		e.refuse(ctx, w, r, "enrollment", res.ClientName, err)
		return
	}
	if res.User {
		err = e.DB.EnrollUser(ctx, res.ClientName, res.Serial, cert.NotAfter, now)
	} else {
		err = e.DB.EnrollClient(ctx, serverdb.Client{Name: res.ClientName, CertSerial: res.Serial, NotAfter: cert.NotAfter, Created: now}, now)
	}
	if err != nil {
		// The token is spent but no certificate went out: the admin issues
		// another one.
		e.refuse(ctx, w, r, "enrollment", tok.RecordName(), err)
		return
	}
	e.changed(ctx)
	e.log().Info("enrolled", "name", tok.RecordName(), "peer", r.RemoteAddr, "serial", res.Serial.Text(16), "not_after", cert.NotAfter)
	e.answer(w, res.CertDER)
}

// Renew answers POST /v1/renew from an authenticated client or person
// (the server checked its certificate before calling): it signs the CSR's
// key for the same principal, a host's certificate or a person's, and
// revokes the certificate the request came with.
func (e *Enroller) Renew(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 || len(r.TLS.VerifiedChains[0]) == 0 {
		e.refuse(ctx, w, r, "renewal", "", fmt.Errorf("%w: no authenticated client", wire.ErrUnauthenticated))
		return
	}
	old := r.TLS.VerifiedChains[0][0]
	kind, client, err := pki.PrincipalOf(old)
	if err != nil {
		e.refuse(ctx, w, r, "renewal", "", fmt.Errorf("%w: %w", wire.ErrUnauthenticated, err))
		return
	}
	sign, store, record := e.CA.SignClient, e.DB.RenewClient, client
	if kind == pki.KindUser {
		sign, store, record = e.CA.SignUser, e.DB.RenewUser, serverdb.UserRevocationName(client)
	}
	body, err := readBody(r)
	if err != nil {
		e.refuse(ctx, w, r, "renewal", record, err)
		return
	}
	csr, err := enroll.ParseRenewRequest(body)
	if err != nil {
		e.refuse(ctx, w, r, "renewal", record, err)
		return
	}
	now := e.now()
	der, serial, err := sign(csr, client, e.ttl(), now)
	if err != nil {
		e.refuse(ctx, w, r, "renewal", record, err)
		return
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		e.refuse(ctx, w, r, "renewal", record, err)
		return
	}
	if err := store(ctx, client, old.SerialNumber, serial, cert.NotAfter, now); err != nil {
		e.refuse(ctx, w, r, "renewal", record, err)
		return
	}
	e.changed(ctx)
	e.log().Info("certificate renewed", "principal", record, "serial", serial.Text(16), "replaces", old.SerialNumber.Text(16), "not_after", cert.NotAfter)
	e.answer(w, der)
}

func (e *Enroller) changed(ctx context.Context) {
	if e.Changed == nil {
		return
	}
	if err := e.Changed(ctx); err != nil {
		e.log().Warn("refresh after enrollment", "err", err)
	}
}

func (e *Enroller) answer(w http.ResponseWriter, certDER []byte) {
	b := enroll.EncodeAnswer(certDER, e.CA.Cert.Raw, e.PolicyPub)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b) // #nosec G705 -- a JSON document (Content-Type set above) of DER certificates we signed
}
