package server

import (
	"encoding/json"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// requestRecord is one line of Config.RequestLog.
type requestRecord struct {
	Time       time.Time `json:"time"`
	Method     string    `json:"method"`
	Status     int       `json:"status"`
	DurationMS float64   `json:"duration_ms"`
}

// statusWriter remembers the status a handler answered with.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(p)
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// logRequests wraps h so that every refused request (status 400 and up,
// see refused) is logged with its peer, client and target, and, when
// Config.RequestLog is set, every request is timed into it.
func (s *Server) logRequests(h http.Handler) http.Handler {
	var mu sync.Mutex
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		defer func() {
			if refused(r.Method, sw.status) {
				client := ""
				if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
					client = r.TLS.PeerCertificates[0].Subject.CommonName
				}
				target := r.RequestURI
				if len(target) > 256 {
					target = target[:256] + "..."
				}
				s.log.Warn("request refused", "peer", r.RemoteAddr, "client", client, "method", r.Method,
					"target", strconv.Quote(target), "status", sw.status)
			}
			if s.cfg.RequestLog == nil {
				return
			}
			rec := requestRecord{Time: start.UTC(), Method: r.Method, Status: sw.status, DurationMS: float64(time.Since(start).Microseconds()) / 1000}
			b, err := json.Marshal(rec)
			if err != nil {
				return
			}
			mu.Lock()
			_, _ = s.cfg.RequestLog.Write(append(b, '\n'))
			mu.Unlock()
		}()
		h.ServeHTTP(sw, r)
	})
}

// refused tells whether a request that got status was refused. A read
// (GET, HEAD) answered 404 is not: it is how a client asks whether a
// repository or object exists, as `coffer init` does before creating one.
func refused(method string, status int) bool {
	if status == http.StatusNotFound && (method == http.MethodGet || method == http.MethodHead) {
		return false
	}
	return status >= 400
}
