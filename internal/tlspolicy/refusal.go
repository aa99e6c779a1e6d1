package tlspolicy

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
)

// Refusal kinds: why a handshake (or request) was refused.
const (
	KindVersion       = "version"        // no TLS version the policy allows
	KindCipher        = "cipher"         // TLS 1.2 (or older) with no allowed suite
	KindGroup         = "group"          // no allowed key exchange group
	KindNoCertificate = "no-certificate" // no client certificate
	KindBadCert       = "bad-certificate"
	KindRejected      = "rejected" // the verify hook refused it (revoked, ...)
	KindTimeout       = "timeout"
	KindMalformed     = "malformed" // no parseable ClientHello
	KindClosed        = "closed"    // the client gave up (for instance, it did not trust us)
	KindSuppressed    = "suppressed"
	KindOverload      = "overload" // closed unfinished: too many handshakes from its address, or in all
	KindOther         = "other"
)

// RefusalRecord is one refused handshake or request. It is also the JSON
// line format of RefusalFile (docs/pki.md).
type RefusalRecord struct {
	Time            time.Time `json:"time"`
	Peer            string    `json:"peer"` // host:port
	Kind            string    `json:"kind"`
	Reason          string    `json:"reason"`
	SNI             string    `json:"sni,omitempty"`
	OfferedVersions []string  `json:"offered_versions,omitempty"`
	OfferedSuites   []string  `json:"offered_suites,omitempty"`
	OfferedGroups   []string  `json:"offered_groups,omitempty"`
	OfferedALPN     []string  `json:"offered_alpn,omitempty"`
	// Count is the number of refusals the record stands for when more than
	// one: those of a "suppressed" record, or the repeats of the same day,
	// source address and kind that a store aggregated (0 means one).
	Count int `json:"count,omitempty"`
}

// RefusalLog persists refusal records. The server implements it over its
// database or uses RefusalFile.
type RefusalLog interface {
	LogRefusal(RefusalRecord) error
}

// Limits on what a peer can make us store: a record's fields are capped
// one by one, so its JSON stays under MaxRecordBytes whatever a ClientHello
// holds (a 17 KB record of 64 ALPN names of 255 bytes was possible).
const (
	maxVersions   = 8
	maxSuites     = 32
	maxGroups     = 16
	maxALPN       = 8
	maxALPNBytes  = 32
	maxFieldBytes = 256 // peer, reason, SNI
	maxLineBytes  = 64 << 10
)

// MaxRecordBytes bounds the JSON of any record NewRefusal returns.
const MaxRecordBytes = 8 << 10

// clip cuts s to n bytes of valid UTF-8 without control characters, which
// JSON would store six times larger and a terminal would interpret.
func clip(s string, n int) string {
	if len(s) > n {
		s = s[:n]
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return '?'
		}
		return r
	}, strings.ToValidUTF8(s, "?"))
}

// Hello is what a ClientHello offered, with names as in the records.
type Hello struct {
	Versions []uint16
	Suites   []uint16
	Groups   []tls.CurveID
	SNI      string
	ALPN     []string
}

func helloFrom(chi *tls.ClientHelloInfo) *Hello {
	h := &Hello{SNI: chi.ServerName}
	h.Versions = slices.Clone(chi.SupportedVersions[:min(len(chi.SupportedVersions), maxVersions)])
	h.Suites = slices.Clone(chi.CipherSuites[:min(len(chi.CipherSuites), maxSuites)])
	h.Groups = slices.Clone(chi.SupportedCurves[:min(len(chi.SupportedCurves), maxGroups)])
	h.ALPN = slices.Clone(chi.SupportedProtos[:min(len(chi.SupportedProtos), maxALPN)])
	return h
}

// NewRefusal returns a refusal record for a handshake from peer that offered h
// (nil when no ClientHello was read) and failed with err, classified
// against p.
func (p Policy) NewRefusal(t time.Time, peer string, h *Hello, err error) RefusalRecord {
	r := RefusalRecord{Time: t.UTC(), Peer: clip(peer, maxFieldBytes), Kind: p.classify(h, err), Reason: clip(errString(err), maxFieldBytes)}
	if h != nil {
		r.SNI = clip(h.SNI, maxFieldBytes)
		for _, v := range h.Versions[:min(len(h.Versions), maxVersions)] {
			r.OfferedVersions = append(r.OfferedVersions, VersionName(v))
		}
		for _, s := range h.Suites[:min(len(h.Suites), maxSuites)] {
			r.OfferedSuites = append(r.OfferedSuites, tls.CipherSuiteName(s))
		}
		for _, g := range h.Groups[:min(len(h.Groups), maxGroups)] {
			r.OfferedGroups = append(r.OfferedGroups, g.String())
		}
		for _, a := range h.ALPN[:min(len(h.ALPN), maxALPN)] {
			r.OfferedALPN = append(r.OfferedALPN, clip(a, maxALPNBytes))
		}
	}
	return r
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// classify decides the kind from what the client offered first (that does
// not depend on crypto/tls's error texts), then from the error.
func (p Policy) classify(h *Hello, err error) string {
	var netErr net.Error
	timeout := errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) || (errors.As(err, &netErr) && netErr.Timeout())
	if h == nil {
		if timeout {
			return KindTimeout
		}
		return KindMalformed
	}
	if kind := p.offerKind(h); kind != "" {
		return kind
	}
	return errorKind(err, timeout)
}

// offerKind returns the kind of a ClientHello the policy cannot serve: no
// allowed version, no allowed suite below TLS 1.3, no allowed group (hybrids
// count only with 1.3); "" when the offer is acceptable.
func (p Policy) offerKind(h *Hello) string {
	best := uint16(0)
	for _, v := range h.Versions {
		if v >= p.MinVersion && v <= tls.VersionTLS13 && v > best {
			best = v
		}
	}
	if best == 0 {
		return KindVersion
	}
	if best < tls.VersionTLS13 && !slices.ContainsFunc(h.Suites, func(s uint16) bool { return slices.Contains(p.CipherSuites, s) }) {
		return KindCipher
	}
	if !slices.ContainsFunc(h.Groups, func(g tls.CurveID) bool {
		return slices.Contains(p.Curves, g) && (best == tls.VersionTLS13 || !IsHybrid(g))
	}) {
		return KindGroup
	}
	return ""
}

// errorKind classifies the error of a handshake whose offer was acceptable.
func errorKind(err error, timeout bool) string {
	var certErr *tls.CertificateVerificationError
	switch {
	case errors.Is(err, ErrPeerRejected):
		return KindRejected
	case errors.As(err, &certErr):
		return KindBadCert
	case err == nil:
		return KindOther
	case strings.Contains(err.Error(), "didn't provide a certificate"):
		return KindNoCertificate
	case timeout:
		return KindTimeout
	case errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || strings.Contains(err.Error(), "connection reset"):
		return KindClosed
	case strings.Contains(err.Error(), "certificate"):
		return KindBadCert
	}
	return KindOther
}

// RefusalFile appends refusal records to a file as JSON lines. It is safe
// for concurrent use.
type RefusalFile struct {
	mu sync.Mutex
	f  *os.File
}

// OpenRefusalFile opens (creating with mode 0600) path for appending.
func OpenRefusalFile(path string) (*RefusalFile, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600) // #nosec G304 -- the server's own state directory
	if err != nil {
		return nil, fmt.Errorf("open refusal log: %w", err)
	}
	return &RefusalFile{f: f}, nil
}

// LogRefusal appends r as one line, written with a single write call.
func (l *RefusalFile) LogRefusal(r RefusalRecord) error {
	b, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("encode refusal: %w", err)
	}
	if len(b) >= maxLineBytes {
		return fmt.Errorf("refusal record of %d bytes is too large", len(b))
	}
	b = append(b, '\n')
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, err := l.f.Write(b); err != nil {
		return fmt.Errorf("write refusal log: %w", err)
	}
	return nil
}

// Close closes the file.
func (l *RefusalFile) Close() error { return l.f.Close() }

// ReadRefusals reads JSON-lines records from r, keeping those at or after
// since. A line that does not parse (a record torn by a crash) is skipped
// and counted in skipped, so one bad line never hides the rest.
func ReadRefusals(r io.Reader, since time.Time) (recs []RefusalRecord, skipped int, err error) {
	br := bufio.NewReaderSize(r, 64<<10)
	for {
		line, err := readLine(br)
		if len(line) > 0 {
			var rec RefusalRecord
			dec := json.NewDecoder(bytes.NewReader(line))
			dec.DisallowUnknownFields()
			if dec.Decode(&rec) != nil || dec.More() {
				skipped++
			} else if !rec.Time.Before(since) {
				recs = append(recs, rec)
			}
		}
		if err == io.EOF {
			return recs, skipped, nil
		}
		if err != nil {
			return recs, skipped, fmt.Errorf("read refusal log: %w", err)
		}
	}
}

// readLine returns the next line without its newline; over-long lines are
// returned truncated (and then fail to parse).
func readLine(br *bufio.Reader) ([]byte, error) {
	var line []byte
	for {
		chunk, err := br.ReadSlice('\n')
		if len(line)+len(chunk) <= maxLineBytes {
			line = append(line, chunk...)
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		return bytes.TrimRight(line, "\r\n"), err
	}
}

// ReadRefusalFile reads the records of a RefusalFile at or after since. A
// missing file holds no records.
func ReadRefusalFile(path string, since time.Time) ([]RefusalRecord, int, error) {
	f, err := os.Open(path) // #nosec G304 -- the server's own state directory
	if errors.Is(err, os.ErrNotExist) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("open refusal log: %w", err)
	}
	defer f.Close()
	return ReadRefusals(f, since)
}

// DaySummary is one UTC day of refusals.
type DaySummary struct {
	Day      string            `json:"day"` // YYYY-MM-DD, UTC
	Refused  int               `json:"refused"`
	ByKind   map[string]int    `json:"by_kind"`
	Insecure []InsecureAttempt `json:"insecure,omitempty"`
}

// InsecureAttempt is a peer that tried, on one day, only versions or suites
// the policy refuses, and what it offered that the policy does not allow.
type InsecureAttempt struct {
	Peer     string   `json:"peer"` // host, without port
	Count    int      `json:"count"`
	Versions []string `json:"versions,omitempty"`
	Suites   []string `json:"suites,omitempty"`
}

// Summarize counts records per UTC day over the days days ending with now's
// day (oldest first, every day present), and lists per day who was refused
// for an insecure version or suite with what it offered below p.
func (p Policy) Summarize(records []RefusalRecord, days int, now time.Time) []DaySummary {
	s := newSummary(days, now)
	for _, r := range records {
		s.add(p, r)
	}
	return s.days()
}

// summary is Summarize in progress.
type summary struct {
	out      []DaySummary
	index    map[string]int // day to position in out
	attempts map[attemptKey]*InsecureAttempt
}

type attemptKey struct {
	day  int
	peer string
}

func newSummary(days int, now time.Time) *summary {
	days = max(days, 1)
	today := now.UTC().Truncate(24 * time.Hour)
	first := today.AddDate(0, 0, -(days - 1))
	s := &summary{out: make([]DaySummary, days), index: make(map[string]int, days), attempts: map[attemptKey]*InsecureAttempt{}}
	for i := range s.out {
		d := first.AddDate(0, 0, i).Format(time.DateOnly)
		s.out[i] = DaySummary{Day: d, ByKind: map[string]int{}}
		s.index[d] = i
	}
	return s
}

// add counts r on its day, if in range, and notes an insecure offer.
func (s *summary) add(p Policy, r RefusalRecord) {
	i, ok := s.index[r.Time.UTC().Format(time.DateOnly)]
	if !ok {
		return
	}
	n := max(r.Count, 1) // a record may stand for several refusals
	s.out[i].Refused += n
	s.out[i].ByKind[r.Kind] += n
	if r.Kind != KindVersion && r.Kind != KindCipher {
		return
	}
	host := r.Peer
	if h, _, err := net.SplitHostPort(r.Peer); err == nil {
		host = h
	}
	k := attemptKey{i, host}
	a := s.attempts[k]
	if a == nil {
		a = &InsecureAttempt{Peer: host}
		s.attempts[k] = a
	}
	a.Count += n
	p.noteInsecure(a, r)
}

// noteInsecure adds to a the versions and suites of r that p refuses.
func (p Policy) noteInsecure(a *InsecureAttempt, r RefusalRecord) {
	for _, v := range r.OfferedVersions {
		if id, ok := versionByName(v); ok && id < p.MinVersion && !slices.Contains(a.Versions, v) {
			a.Versions = append(a.Versions, v)
		}
	}
	for _, s := range r.OfferedSuites {
		id, known := suiteByName(s)
		weak := !known && strings.HasPrefix(s, "0x") || known && !isTLS13Suite(id) && !slices.Contains(p.CipherSuites, id)
		if weak && !slices.Contains(a.Suites, s) && len(a.Suites) < maxSuites {
			a.Suites = append(a.Suites, s)
		}
	}
}

// days returns the summaries, each day's insecure peers by count, most
// first, then by name.
func (s *summary) days() []DaySummary {
	for k, a := range s.attempts {
		s.out[k.day].Insecure = append(s.out[k.day].Insecure, *a)
	}
	for i := range s.out {
		sort.Slice(s.out[i].Insecure, func(a, b int) bool {
			x, y := s.out[i].Insecure[a], s.out[i].Insecure[b]
			if x.Count != y.Count {
				return x.Count > y.Count
			}
			return x.Peer < y.Peer
		})
	}
	return s.out
}

func versionByName(name string) (uint16, bool) {
	for _, v := range []uint16{versionSSL30, tls.VersionTLS10, tls.VersionTLS11, tls.VersionTLS12, tls.VersionTLS13} {
		if VersionName(v) == name {
			return v, true
		}
	}
	return 0, false
}
