package server

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"slices"
	"strconv"
	"time"

	"github.com/coffer-backup/coffer/internal/pki/enrol"
	"github.com/coffer-backup/coffer/internal/serverdb"
	"github.com/coffer-backup/coffer/internal/storage"
	"github.com/coffer-backup/coffer/internal/wire"
)

// maxEnrolBody bounds an enrolment request (a token and a CSR).
const maxEnrolBody = 64 << 10

// Handler returns the HTTP handler of the API. It expects requests over
// TLS with verified client certificates; anything else but enrolment is
// refused with 401.
func (s *Server) Handler() http.Handler { return http.HandlerFunc(s.serveHTTP) }

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	// Enrolment is the one route without a certificate; it is matched by
	// exact comparison, nothing is parsed before authentication.
	if r.Method == http.MethodPost && r.RequestURI == wire.EnrollPath {
		s.serveEnroll(w, r)
		return
	}
	client, ok := s.authenticate(w, r)
	if !ok {
		return
	}
	release, ok := s.acquire(client.Name)
	if !ok {
		w.Header().Set("Retry-After", "1")
		wire.WriteError(w, fmt.Errorf("%w: client %s", wire.ErrTooManyRequests, client.Name))
		return
	}
	defer release()
	s.noteContact(client.Name)

	if r.Method == http.MethodPost && r.RequestURI == enrol.RenewPath {
		s.serveRenew(w, r, client.Name)
		return
	}

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
	ctx := context.WithValue(r.Context(), clientKey{}, client.Name)
	r = r.WithContext(ctx)
	id := objectID{Client: client.Name, Repo: route.Repo, Kind: string(route.Kind), Name: route.Name}
	switch route.Op {
	case wire.OpCreateRepo:
		err = s.createRepo(ctx, client.Name, route.Repo)
		if err == nil {
			w.WriteHeader(http.StatusCreated)
		}
	case wire.OpStatRepo:
		err = s.store.repoExists(client.Name, route.Repo)
		if err == nil {
			w.WriteHeader(http.StatusNoContent)
		}
	case wire.OpList:
		err = s.serveList(w, r, client.Name, route)
	case wire.OpStat:
		err = s.serveStat(w, id)
	case wire.OpLoad:
		err = s.serveLoad(w, r, id)
	case wire.OpSave:
		err = s.serveSave(w, r, client, id)
	case wire.OpRemove:
		err = s.serveRemove(ctx, w, client, id)
	default:
		err = wire.ErrNoRoute
	}
	if err != nil {
		s.fail(w, client.Name, route, err)
	}
}

// fail answers a failed operation. Damage and internal errors are logged
// with their cause; the response carries only the code.
func (s *Server) fail(w http.ResponseWriter, client string, route wire.Route, err error) {
	switch {
	case errors.Is(err, ErrCorrupt):
		s.log.Error("damaged object", "client", client, "repo", route.Repo, "object", route.Handle().String(), "err", err)
		err = fmt.Errorf("%w: %v", wire.ErrCorrupt, err)
	case errors.Is(err, errDigestMismatch):
		err = fmt.Errorf("%w: %v", wire.ErrDigest, err)
	case errors.Is(err, errUpload):
		err = fmt.Errorf("%w: %v", wire.ErrBadRequest, err)
	}
	if status, _ := wire.Classify(err); status >= 500 {
		s.log.Error("request failed", "client", client, "op", route.Op.String(), "repo", route.Repo, "object", route.Handle().String(), "err", err)
	}
	wire.WriteError(w, err)
}

func (s *Server) serveEnroll(w http.ResponseWriter, r *http.Request) {
	if !s.enrolLimit.allow(s.now()) {
		w.Header().Set("Retry-After", "1")
		wire.WriteError(w, fmt.Errorf("%w: enrolment", wire.ErrTooManyRequests))
		return
	}
	if s.cfg.Enroll == nil {
		wire.WriteError(w, fmt.Errorf("%w: enrolment", wire.ErrNotImplemented))
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxEnrolBody)
	s.cfg.Enroll.ServeHTTP(w, r)
}

// serveRenew hands an authenticated client's renewal to Config.Renew.
func (s *Server) serveRenew(w http.ResponseWriter, r *http.Request, client string) {
	if s.cfg.Renew == nil {
		wire.WriteError(w, fmt.Errorf("%w: renewal", wire.ErrNotImplemented))
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxEnrolBody)
	s.cfg.Renew.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), clientKey{}, client)))
}

func (s *Server) createRepo(ctx context.Context, client, repo string) error {
	if err := s.store.createRepo(client, repo); err != nil {
		return err
	}
	if err := s.cfg.DB.LogEvent(ctx, serverdb.Event{Time: s.now(), Client: client, Repo: repo, Action: serverdb.ActionCreateRepo}); err != nil {
		s.log.Warn("audit log", "err", err)
	}
	return nil
}

// sentWriter notes whether anything was sent, so an error can still get a
// proper response until the first byte goes out, and aborts the stream
// after that.
type sentWriter struct {
	w      http.ResponseWriter
	before func()
	sent   bool
}

func (sw *sentWriter) Write(p []byte) (int, error) {
	if !sw.sent {
		sw.sent = true
		if sw.before != nil {
			sw.before()
		}
	}
	return sw.w.Write(p)
}

func (s *Server) serveList(w http.ResponseWriter, r *http.Request, client string, route wire.Route) error {
	if err := s.store.repoExists(client, route.Repo); err != nil {
		return err
	}
	sw := &sentWriter{w: w, before: func() { w.Header().Set("Content-Type", wire.ListContentType) }}
	lw := wire.NewListWriter(sw)
	err := s.store.list(r.Context(), client, route.Repo, route.Kind, func(e entry) error {
		we := wire.Entry{Name: e.name, Size: e.size}
		if route.Kind == storage.KindSnapshots {
			id := objectID{Client: client, Repo: route.Repo, Kind: string(route.Kind), Name: e.name}
			if o, err := s.store.open(id); err == nil {
				t := o.hdr.Received
				we.Received = &t
				_ = o.Close()
			} else if !errors.Is(err, storage.ErrNotFound) {
				s.log.Error("listing snapshot", "client", client, "repo", route.Repo, "name", e.name, "err", err)
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

func setObjectHeaders(h http.Header, o *objectReader) {
	h.Set(wire.HeaderReceived, o.hdr.Received.Format(time.RFC3339Nano))
	h.Set(wire.HeaderContentSHA256, hex.EncodeToString(o.hdr.ContentHash[:]))
}

func (s *Server) serveStat(w http.ResponseWriter, id objectID) error {
	o, err := s.store.open(id)
	if err != nil {
		return err
	}
	defer func() { _ = o.Close() }()
	h := w.Header()
	setObjectHeaders(h, o)
	h.Set("Content-Length", strconv.FormatInt(o.hdr.Size, 10))
	h.Set("Content-Type", "application/octet-stream")
	w.WriteHeader(http.StatusOK)
	return nil
}

func (s *Server) serveLoad(w http.ResponseWriter, r *http.Request, id objectID) error {
	ranges := r.Header.Values("Range")
	if len(ranges) > 1 {
		return fmt.Errorf("%w: %d Range headers", storage.ErrRange, len(ranges))
	}
	o, err := s.store.open(id)
	if err != nil {
		return err
	}
	defer func() { _ = o.Close() }()
	size := o.hdr.Size
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
	if err := o.loadTable(); err != nil {
		return err
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
	err = o.writeRange(sw, offset, length)
	var we *writeError
	switch {
	case err == nil:
		if !sw.sent {
			start()
		}
		return nil
	case errors.As(err, &we):
		return nil // the client went away
	case sw.sent:
		s.log.Error("damaged object found while sending it", "object", id.String(), "err", err)
		panic(http.ErrAbortHandler)
	}
	return err
}

// errUpload marks a failure reading the request body.
var errUpload = errors.New("upload")

func (s *Server) serveSave(w http.ResponseWriter, r *http.Request, client serverdb.Client, id objectID) error {
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
	if err := s.store.repoExists(id.Client, id.Repo); err != nil {
		return err
	}
	done, err := s.reserve(r.Context(), client.Name, size, client.QuotaBytes)
	if err != nil {
		return err
	}
	received := s.now().UTC()
	body := &uploadReader{r: http.MaxBytesReader(w, r.Body, size)}
	err = s.store.save(r.Context(), id, size, body, want, received)
	done(err == nil)
	if err != nil {
		if body.err != nil && !errors.Is(err, storage.ErrExists) {
			return fmt.Errorf("%w: %w", errUpload, body.err)
		}
		return err
	}
	w.Header().Set(wire.HeaderReceived, received.Format(time.RFC3339Nano))
	w.WriteHeader(http.StatusCreated)
	return nil
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

func (s *Server) serveRemove(ctx context.Context, w http.ResponseWriter, client serverdb.Client, id objectID) error {
	kind := storage.Kind(id.Kind)
	ev := serverdb.Event{Time: s.now(), Client: client.Name, Repo: id.Repo, Object: storage.Handle{Kind: kind, Name: id.Name}.String()}
	if !client.AllowDelete && !slices.Contains(s.cfg.AppendOnlyRemovable, kind) {
		ev.Action = serverdb.ActionDeleteRefused
		if err := s.cfg.DB.LogEvent(ctx, ev); err != nil {
			s.log.Warn("audit log", "err", err)
		}
		return fmt.Errorf("%w: client %s is append-only", storage.ErrForbidden, client.Name)
	}
	_, file, err := s.store.objectPath(id)
	if err != nil {
		return err
	}
	fi, err := os.Lstat(file)
	if errors.Is(err, fs.ErrNotExist) {
		if rerr := s.store.repoExists(id.Client, id.Repo); rerr != nil {
			return rerr
		}
		return fmt.Errorf("%s: %w", id.Name, storage.ErrNotFound)
	}
	if err != nil {
		return err
	}
	size, _ := contentSize(fi.Size())
	// Logged before it happens: no deletion goes unrecorded.
	ev.Action = serverdb.ActionDelete
	ev.Detail = "size=" + strconv.FormatInt(size, 10)
	if err := s.cfg.DB.LogEvent(ctx, ev); err != nil {
		return fmt.Errorf("audit log before deletion: %w", err)
	}
	if err := s.store.remove(id); err != nil {
		return err
	}
	s.released(client.Name, size)
	w.WriteHeader(http.StatusNoContent)
	return nil
}
