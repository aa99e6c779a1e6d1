package server

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/coffer-backup/coffer/internal/atrest"
	fleetapi "github.com/coffer-backup/coffer/internal/fleet/api"
	"github.com/coffer-backup/coffer/internal/pki"
	"github.com/coffer-backup/coffer/internal/pki/enroll"
	"github.com/coffer-backup/coffer/internal/server/enrollment"
	"github.com/coffer-backup/coffer/internal/serverdb"
	"github.com/coffer-backup/coffer/internal/storage"
	"github.com/coffer-backup/coffer/internal/wire"
)

// maxEnrollBody bounds an enrollment request (a token and a CSR).
const maxEnrollBody = 64 << 10

// Handler returns the HTTP handler of the API. It expects requests over
// TLS with verified client certificates; anything else but enrollment is
// refused with 401.
func (s *Server) Handler() http.Handler { return http.HandlerFunc(s.serveHTTP) }

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	// Enrollment is the one route without a certificate; it is matched by
	// exact comparison, nothing is parsed before authentication.
	if r.Method == http.MethodPost && r.RequestURI == wire.EnrollPath {
		s.serveEnroll(w, r)
		return
	}
	who, ok := s.authenticate(w, r)
	if !ok {
		return
	}
	release, ok := s.acquire(who.slot())
	if !ok {
		w.Header().Set("Retry-After", "1")
		wire.WriteError(w, fmt.Errorf("%w: %s", wire.ErrTooManyRequests, who.slot()))
		return
	}
	defer release()
	if who.kind == pki.KindClient {
		s.noteContact(who.name)
	}
	ctx, done := s.track(r.Context(), w, who.slot())
	defer done()
	r = r.WithContext(ctx)

	if strings.HasPrefix(r.RequestURI, fleetapi.AdminPrefix) || strings.HasPrefix(r.RequestURI, agentPrefix) {
		s.serveFleet(w, r, who)
		return
	}
	if r.Method == http.MethodPost && r.RequestURI == enroll.RenewPath {
		// A host's or a person's certificate renews the same way.
		s.serveRenew(w, r, who.name)
		return
	}
	if who.kind != pki.KindClient {
		// A person has no storage namespace: no repository route.
		wire.WriteError(w, fmt.Errorf("%w: user %s: a person's certificate has no storage namespace (repositories are reached with a host's identity)", storage.ErrForbidden, who.name))
		return
	}
	client := who.client

	route, err := wire.ParseRequest(r.Method, r.RequestURI)
	if err != nil {
		s.log.Debug("refused request", "client", client.Name, "method", r.Method, "err", err)
		wire.WriteError(w, err)
		return
	}
	if route.Op == wire.OpEnroll { // not reached: matched above
		s.serveEnroll(w, r)
		return
	}
	ctx = context.WithValue(ctx, clientKey{}, client.Name)
	r = r.WithContext(ctx)
	if route.Op == wire.OpCreateRepo {
		err = s.createRepo(ctx, client, route.Repo)
		if err == nil {
			w.WriteHeader(http.StatusCreated)
		}
	} else {
		err = s.serveObjects(w, r, client, route)
	}
	if err != nil {
		s.fail(w, client.Name, route, err)
	}
}

// serveObjects serves the operations on an existing repository, through
// its storage.
func (s *Server) serveObjects(w http.ResponseWriter, r *http.Request, client serverdb.Client, route wire.Route) error {
	st, err := s.store.Open(r.Context(), client.Name, route.Repo)
	if err != nil {
		return err
	}
	defer func() { _ = st.Close() }()
	h := route.Handle()
	switch route.Op {
	case wire.OpStatRepo:
		w.WriteHeader(http.StatusNoContent)
		return nil
	case wire.OpList:
		return s.serveList(w, r, st, client.Name, route)
	case wire.OpStat:
		return s.serveStat(w, r, st, h)
	case wire.OpLoad:
		return s.serveLoad(w, r, st, h)
	case wire.OpSave:
		return s.serveSave(w, r, st, client, route.Repo, h)
	case wire.OpRemove:
		return s.serveRemove(r.Context(), w, st, client, route)
	}
	return wire.ErrNoRoute
}

// fail answers a failed operation. Damage and internal errors are logged
// with their cause; the response carries only the code.
func (s *Server) fail(w http.ResponseWriter, client string, route wire.Route, err error) {
	switch {
	case errors.Is(err, ErrCorrupt):
		s.log.Error("damaged object", "client", client, "repo", route.Repo, "object", route.Handle().String(), "err", err)
		err = fmt.Errorf("%w: %v", wire.ErrCorrupt, err)
	case errors.Is(err, atrest.ErrDigestMismatch):
		err = fmt.Errorf("%w: %v", wire.ErrDigest, err)
	case errors.Is(err, errUpload):
		err = fmt.Errorf("%w: %v", wire.ErrBadRequest, err)
	case serverdb.Unavailable(err):
		s.log.Error("request refused: the state database cannot be reached", "client", client, "op", route.Op.String(), "err", err)
		wire.WriteError(w, fmt.Errorf("%w: %w", wire.ErrUnavailable, serverdb.ErrUnavailable))
		return
	}
	if status, _ := wire.Classify(err); status >= 500 {
		s.log.Error("request failed", "client", client, "op", route.Op.String(), "repo", route.Repo, "object", route.Handle().String(), "err", err)
	}
	wire.WriteError(w, err)
}

func (s *Server) serveEnroll(w http.ResponseWriter, r *http.Request) {
	if ok, wait := s.enrollLimit.Allow(r.RemoteAddr, s.now()); !ok {
		w.Header().Set("Retry-After", strconv.Itoa(enrollment.RetryAfterSeconds(wait)))
		wire.WriteError(w, fmt.Errorf("%w: enrollment attempts from %s, retry in %s", wire.ErrTooManyRequests, enrollment.SourceOf(r.RemoteAddr), wait.Round(time.Millisecond)))
		return
	}
	if s.cfg.Enroll == nil {
		wire.WriteError(w, fmt.Errorf("%w: enrollment", wire.ErrNotImplemented))
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxEnrollBody)
	s.cfg.Enroll.ServeHTTP(w, r)
}

// serveRenew hands an authenticated client's renewal to Config.Renew.
func (s *Server) serveRenew(w http.ResponseWriter, r *http.Request, client string) {
	if s.cfg.Renew == nil {
		wire.WriteError(w, fmt.Errorf("%w: renewal", wire.ErrNotImplemented))
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxEnrollBody)
	s.cfg.Renew.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), clientKey{}, client)))
}

func (s *Server) createRepo(ctx context.Context, c serverdb.Client, repo string) error {
	if err := s.reserveRepo(ctx, c, func() error { return s.store.Create(ctx, c.Name, repo) }); err != nil {
		return err
	}
	if err := s.cfg.DB.LogEvent(ctx, serverdb.Event{Time: s.now(), Client: c.Name, Repo: repo, Action: serverdb.ActionCreateRepo}); err != nil {
		s.log.Warn("audit log", "err", err)
	}
	return nil
}

// sentWriter notes whether anything was sent, so an error can still get a
// proper response until the first byte goes out, and aborts the stream
// after that. err is the first error of sending.
type sentWriter struct {
	w      http.ResponseWriter
	before func()
	sent   bool
	err    error
}

func (sw *sentWriter) Write(p []byte) (int, error) {
	if !sw.sent {
		sw.sent = true
		if sw.before != nil {
			sw.before()
		}
	}
	n, err := sw.w.Write(p)
	if err != nil && sw.err == nil {
		sw.err = err
	}
	return n, err
}

func (s *Server) serveList(w http.ResponseWriter, r *http.Request, st *atrest.Storage, client string, route wire.Route) error {
	if !storage.ValidKind(route.Kind) {
		return fmt.Errorf("%w: unknown kind %q", storage.ErrInvalidName, route.Kind)
	}
	sw := &sentWriter{w: w, before: func() { w.Header().Set("Content-Type", wire.ListContentType) }}
	lw := wire.NewListWriter(sw)
	ctx := r.Context()
	err := st.List(ctx, route.Kind, func(fi storage.FileInfo) error {
		we := wire.Entry{Name: fi.Name, Size: fi.Size}
		if route.Kind == storage.KindSnapshots {
			if o, err := st.Open(ctx, storage.Handle{Kind: route.Kind, Name: fi.Name}); err == nil {
				t := o.Received()
				we.Received = &t
			} else if !errors.Is(err, storage.ErrNotFound) {
				s.log.Error("listing snapshot", "client", client, "repo", route.Repo, "name", fi.Name, "err", err)
			}
		}
		return lw.Write(we)
	})
	if err == nil {
		err = lw.Close()
	}
	if err != nil && sw.sent {
		// The listing is cut: the client sees a reset stream and no final
		// line, never a short listing.
		s.log.Error("listing failed", "client", client, "repo", route.Repo, "kind", route.Kind, "err", err)
		panic(http.ErrAbortHandler)
	}
	return err
}

func setObjectHeaders(h http.Header, o *atrest.Object) {
	sum := o.ContentSHA256()
	h.Set(wire.HeaderReceived, o.Received().Format(time.RFC3339Nano))
	h.Set(wire.HeaderContentSHA256, hex.EncodeToString(sum[:]))
}

func (s *Server) serveStat(w http.ResponseWriter, r *http.Request, st *atrest.Storage, oh storage.Handle) error {
	o, err := st.Open(r.Context(), oh)
	if err != nil {
		return err
	}
	h := w.Header()
	setObjectHeaders(h, o)
	h.Set("Content-Length", strconv.FormatInt(o.Size(), 10))
	h.Set("Content-Type", "application/octet-stream")
	w.WriteHeader(http.StatusOK)
	return nil
}

func (s *Server) serveLoad(w http.ResponseWriter, r *http.Request, st *atrest.Storage, oh storage.Handle) error {
	ranges := r.Header.Values("Range")
	if len(ranges) > 1 {
		return fmt.Errorf("%w: %d Range headers", storage.ErrRange, len(ranges))
	}
	o, err := st.Open(r.Context(), oh)
	if err != nil {
		return err
	}
	size := o.Size()
	offset, length, status := int64(0), size, http.StatusOK
	if len(ranges) == 1 {
		rng, err := wire.ParseRange(ranges[0])
		if err != nil {
			return err
		}
		if offset, length, err = rng.Resolve(size); err != nil {
			return err
		}
		status = http.StatusPartialContent
	}
	start := func() {
		h := w.Header()
		setObjectHeaders(h, o)
		h.Set("Content-Length", strconv.FormatInt(length, 10))
		h.Set("Content-Type", "application/octet-stream")
		if status == http.StatusPartialContent {
			h.Set("Content-Range", wire.ContentRange(offset, length, size))
		}
		w.WriteHeader(status)
	}
	sw := &sentWriter{w: w, before: start}
	err = o.WriteRange(r.Context(), sw, offset, length)
	switch {
	case err == nil:
		if !sw.sent {
			start()
		}
		return nil
	case sw.err != nil:
		return nil // the client went away
	case sw.sent:
		s.log.Error("damaged object found while sending it", "object", oh.String(), "err", err)
		panic(http.ErrAbortHandler)
	}
	return err
}

// errUpload marks a failure reading the request body.
var errUpload = errors.New("upload")

func (s *Server) serveSave(w http.ResponseWriter, r *http.Request, st *atrest.Storage, client serverdb.Client, repo string, h storage.Handle) error {
	size := r.ContentLength
	if size < 0 {
		return wire.ErrLengthRequired
	}
	if size > s.cfg.MaxObjectSize {
		return fmt.Errorf("%w: %d bytes, the limit is %d", wire.ErrTooLarge, size, s.cfg.MaxObjectSize)
	}
	var want []byte
	if v := r.Header.Get(wire.HeaderContentSHA256); v != "" {
		b, err := hex.DecodeString(v)
		if err != nil || len(b) != 32 || hex.EncodeToString(b) != v {
			return fmt.Errorf("%w: bad %s header", wire.ErrBadRequest, wire.HeaderContentSHA256)
		}
		want = b
	}
	done, err := s.reserve(r.Context(), client, size)
	if err != nil {
		return err
	}
	received := s.now().UTC()
	body := &uploadReader{r: http.MaxBytesReader(w, r.Body, size)}
	err = st.SaveStream(r.Context(), h, &upload{body: body, size: size, want: want, received: received}, size)
	done(err == nil)
	if err != nil {
		if body.err != nil && !errors.Is(err, storage.ErrExists) {
			return fmt.Errorf("%w: %w", errUpload, body.err)
		}
		return err
	}
	if h.Kind == storage.KindSnapshots {
		s.stamp(r.Context(), client.Name, repo, h.Name, received)
	}
	w.Header().Set(wire.HeaderReceived, received.Format(time.RFC3339Nano))
	w.WriteHeader(http.StatusCreated)
	return nil
}

// upload is a request body as the at-rest layer takes it: exactly size
// bytes, the digest they must have and the time the server received them.
type upload struct {
	body     *uploadReader
	size     int64
	want     []byte
	received time.Time
}

var _ atrest.Upload = (*upload)(nil)

func (u *upload) WantSHA256() []byte    { return u.want }
func (u *upload) ReceivedAt() time.Time { return u.received }

// WriteTo copies the declared length to w; anything more is a broken request.
func (u *upload) WriteTo(w io.Writer) (int64, error) {
	n, err := io.CopyN(w, u.body, u.size)
	if err != nil {
		return n, fmt.Errorf("read upload: %w", err)
	}
	var one [1]byte
	if k, err := u.body.Read(one[:]); k > 0 || (err != nil && !errors.Is(err, io.EOF)) {
		if err == nil {
			err = errors.New("more bytes than declared")
		}
		return n, fmt.Errorf("read upload: %w", err)
	}
	return n, nil
}

// uploadReader remembers the body's read error, to tell a broken upload
// from a failure of the server.
type uploadReader struct {
	r   io.Reader
	err error
}

func (u *uploadReader) Read(p []byte) (int, error) {
	n, err := u.r.Read(p)
	if err != nil && !errors.Is(err, io.EOF) && u.err == nil {
		u.err = err
	}
	return n, err
}

func (s *Server) serveRemove(ctx context.Context, w http.ResponseWriter, st *atrest.Storage, client serverdb.Client, route wire.Route) error {
	h := route.Handle()
	now := s.now()
	ev := serverdb.Event{Time: now, Client: client.Name, Repo: route.Repo, Object: h.String()}
	grant, ok, err := s.mayRemove(ctx, client, route.Repo, h, now)
	if err != nil {
		return err
	}
	if !ok {
		ev.Action, ev.Detail = serverdb.ActionDeleteRefused, "no deletion grant covers it"
		if err := s.cfg.DB.LogEvent(ctx, ev); err != nil {
			s.log.Warn("audit log", "err", err)
		}
		return fmt.Errorf("%w: client %s is append-only and no deletion grant covers %s", storage.ErrForbidden, client.Name, h)
	}
	// The sealed size, not an authenticated one: a damaged object can go too.
	fi, err := st.Base().Stat(ctx, h)
	if err != nil {
		return err
	}
	size, _ := atrest.ContentSize(fi.Size)
	// Logged before it happens: no deletion goes unrecorded.
	ev.Action = serverdb.ActionDelete
	ev.Detail = "size=" + strconv.FormatInt(size, 10)
	if grant != "" {
		ev.Detail += " grant=" + grant + " to=trash"
	}
	if err := s.cfg.DB.LogEvent(ctx, ev); err != nil {
		return fmt.Errorf("audit log before deletion: %w", err)
	}
	if grant != "" {
		err = s.store.Trash(ctx, client.Name, route.Repo, h, now)
	} else {
		err = st.Remove(ctx, h)
	}
	if err != nil {
		return err
	}
	if h.Kind == storage.KindSnapshots {
		if err := s.cfg.DB.SetStampDeleted(context.WithoutCancel(ctx), client.Name, route.Repo, h.Name, now); err != nil {
			s.log.Error("mark a snapshot's stamp deleted", "client", client.Name, "repo", route.Repo, "name", h.Name, "err", err)
		}
	}
	s.released(ctx, client.Name, size)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// grantKinds are the kinds a grant's window lets a host delete: what prune
// removes besides snapshots. Keys, key terms and the config never go.
var grantKinds = []storage.Kind{storage.KindData, storage.KindIndex, storage.KindForgets, storage.KindCondemned}

// mayRemove says whether client may delete h from repo now, and under
// which grant (its job; empty when no grant is needed: a client with
// allow-delete, or a kind append-only still lets go, such as locks). A
// grant covers the snapshot objects it names and, in its window, the
// kinds prune deletes.
func (s *Server) mayRemove(ctx context.Context, client serverdb.Client, repo string, h storage.Handle, now time.Time) (string, bool, error) {
	if client.AllowDelete || slices.Contains(s.cfg.AppendOnlyRemovable, h.Kind) {
		return "", true, nil
	}
	grants, err := s.cfg.DB.ActiveGrants(ctx, client.Name, repo, now)
	if err != nil {
		return "", false, fmt.Errorf("read deletion grants: %w", err)
	}
	for _, g := range grants {
		if h.Kind == storage.KindSnapshots && slices.Contains(g.Snapshots, h.Name) || slices.Contains(grantKinds, h.Kind) {
			return g.Job, true, nil
		}
	}
	return "", false, nil
}
