package tlspolicy

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

var day = time.Date(2026, 3, 10, 15, 0, 0, 0, time.UTC)

func TestClassify(t *testing.T) {
	p := Default()
	good := &Hello{Versions: []uint16{tls.VersionTLS13, tls.VersionTLS12}, Suites: []uint16{tls.TLS_AES_128_GCM_SHA256, tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256}, Groups: []tls.CurveID{tls.X25519}}
	cases := []struct {
		name  string
		hello *Hello
		err   error
		want  string
	}{
		{"old versions", &Hello{Versions: []uint16{tls.VersionTLS11, tls.VersionTLS10}, Suites: p.CipherSuites, Groups: p.Curves}, errors.New("x"), KindVersion},
		{"1.2 with CBC only", &Hello{Versions: []uint16{tls.VersionTLS12}, Suites: []uint16{tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA}, Groups: p.Curves}, errors.New("x"), KindCipher},
		{"1.3 needs no 1.2 suite", &Hello{Versions: []uint16{tls.VersionTLS13}, Suites: []uint16{tls.TLS_AES_128_GCM_SHA256}, Groups: []tls.CurveID{tls.X25519MLKEM768}}, errors.New("tls: client didn't provide a certificate"), KindNoCertificate},
		{"1.2 with only hybrid groups", &Hello{Versions: []uint16{tls.VersionTLS12}, Suites: p.CipherSuites, Groups: []tls.CurveID{tls.X25519MLKEM768}}, errors.New("x"), KindGroup},
		{"no groups", &Hello{Versions: []uint16{tls.VersionTLS13}}, errors.New("x"), KindGroup},
		{"rejected", good, ErrPeerRejected, KindRejected},
		{"bad cert", good, &tls.CertificateVerificationError{Err: errors.New("unknown authority")}, KindBadCert},
		{"closed", good, io.EOF, KindClosed},
		{"timeout", good, os.ErrDeadlineExceeded, KindTimeout},
		{"no hello timeout", nil, os.ErrDeadlineExceeded, KindTimeout},
		{"no hello", nil, errors.New("tls: first record does not look like a TLS handshake"), KindMalformed},
		{"other", good, errors.New("tls: something"), KindOther},
		{"no error", good, nil, KindOther},
		{"reset", good, errors.New("read tcp: connection reset by peer"), KindClosed},
		{"closed conn", good, net.ErrClosed, KindClosed},
		{"certificate text", good, errors.New("tls: invalid certificate signature"), KindBadCert},
		{"timeout after a good hello", good, context.DeadlineExceeded, KindTimeout},
		{"1.2 hello, suite allowed, only classical groups", &Hello{Versions: []uint16{tls.VersionTLS12}, Suites: p.CipherSuites, Groups: []tls.CurveID{tls.CurveP256}}, io.EOF, KindClosed},
	}
	for _, c := range cases {
		if got := p.classify(c.hello, c.err); got != c.want {
			t.Errorf("%s: %s, want %s", c.name, got, c.want)
		}
	}
}

func TestRefusalFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "refusals.jsonl")
	f, err := OpenRefusalFile(path)
	if err != nil {
		t.Fatal(err)
	}
	p := Default()
	hello := &Hello{Versions: []uint16{tls.VersionTLS10}, Suites: []uint16{tls.TLS_RSA_WITH_3DES_EDE_CBC_SHA, 0x1234}, Groups: []tls.CurveID{tls.X25519}, SNI: "backup.example"}
	recs := []RefusalRecord{
		p.NewRefusal(day.Add(-48*time.Hour), "192.0.2.1:4000", hello, errors.New("tls: client offered only unsupported versions")),
		p.NewRefusal(day, "192.0.2.1:4001", hello, errors.New("tls: client offered only unsupported versions")),
		p.NewRefusal(day, "[2001:db8::1]:4002", &Hello{Versions: []uint16{tls.VersionTLS12}, Suites: []uint16{tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA}, Groups: []tls.CurveID{tls.X25519}}, errors.New("no suite")),
		p.NewRefusal(day, "198.51.100.7:1", &Hello{Versions: []uint16{tls.VersionTLS13}, Suites: []uint16{tls.TLS_AES_128_GCM_SHA256}, Groups: []tls.CurveID{tls.X25519}}, errors.New("tls: client didn't provide a certificate")),
	}
	for _, r := range recs {
		if err := f.LogRefusal(r); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Fatalf("refusal log mode %#o", fi.Mode().Perm())
	}
	if recs[0].Kind != KindVersion || recs[0].SNI != "backup.example" || !slices.Equal(recs[0].OfferedSuites, []string{"TLS_RSA_WITH_3DES_EDE_CBC_SHA", "0x1234"}) {
		t.Fatalf("record %+v", recs[0])
	}
	// A crash tore the last line.
	raw, _ := os.ReadFile(path)
	raw = append(raw, []byte(`{"time":"2026-03-10T15:00:00Z","peer":"x`)...)
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	got, skipped, err := ReadRefusalFile(path, day.Add(-24*time.Hour))
	if err != nil || skipped != 1 || len(got) != 3 {
		t.Fatalf("read: %d records, %d skipped, %v", len(got), skipped, err)
	}
	if !got[0].Time.Equal(recs[1].Time) || got[2].Kind != KindNoCertificate {
		t.Fatalf("read back %+v", got)
	}
	if r, _, err := ReadRefusalFile(filepath.Join(t.TempDir(), "missing"), time.Time{}); err != nil || r != nil {
		t.Fatalf("missing file: %v", err)
	}

	all, _, _ := ReadRefusalFile(path, time.Time{})
	sum := p.Summarize(all, 3, day)
	if len(sum) != 3 || sum[0].Day != "2026-03-08" || sum[2].Day != "2026-03-10" || sum[1].Refused != 0 {
		t.Fatalf("days %+v", sum)
	}
	today := sum[2]
	if today.Refused != 3 || today.ByKind[KindVersion] != 1 || today.ByKind[KindCipher] != 1 || today.ByKind[KindNoCertificate] != 1 {
		t.Fatalf("today %+v", today)
	}
	if len(today.Insecure) != 2 {
		t.Fatalf("insecure %+v", today.Insecure)
	}
	for _, a := range today.Insecure {
		switch a.Peer {
		case "192.0.2.1":
			if !slices.Equal(a.Versions, []string{"TLS 1.0"}) || !slices.Equal(a.Suites, []string{"TLS_RSA_WITH_3DES_EDE_CBC_SHA", "0x1234"}) {
				t.Errorf("attempt %+v", a)
			}
		case "2001:db8::1":
			if len(a.Versions) != 0 || !slices.Equal(a.Suites, []string{"TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA"}) {
				t.Errorf("attempt %+v", a)
			}
		default:
			t.Errorf("unexpected peer %q", a.Peer)
		}
	}
	if sum[0].Refused != 1 || len(sum[0].Insecure) != 1 {
		t.Fatalf("two days ago %+v", sum[0])
	}
	if got := p.Summarize(all, 1, day); len(got) != 1 || got[0].Refused != 3 {
		t.Fatalf("one day %+v", got)
	}
}

// TestRefusalRecordBounded: whatever a ClientHello holds (64 ALPN names of
// 255 control bytes, a long SNI, thousands of suites, versions and groups),
// each field is capped and the record's JSON stays under MaxRecordBytes.
func TestRefusalRecordBounded(t *testing.T) {
	t.Parallel()
	many := make([]uint16, 5000)
	curves := make([]tls.CurveID, 5000)
	for i := range many {
		many[i], curves[i] = uint16(i), tls.CurveID(i)
	}
	alpn := make([]string, 64)
	for i := range alpn {
		alpn[i] = strings.Repeat("\x01", 255)
	}
	h := &Hello{Versions: many, Suites: many, Groups: curves, SNI: strings.Repeat("\x7f", 1000), ALPN: alpn}
	r := Default().NewRefusal(day, strings.Repeat("p", 1000), h, errors.New(strings.Repeat("\x02", 5000)))
	if len(r.OfferedVersions) != maxVersions || len(r.OfferedSuites) != maxSuites || len(r.OfferedGroups) != maxGroups || len(r.OfferedALPN) != maxALPN {
		t.Fatalf("lists not capped: %d versions, %d suites, %d groups, %d ALPN", len(r.OfferedVersions), len(r.OfferedSuites), len(r.OfferedGroups), len(r.OfferedALPN))
	}
	if len(r.SNI) > maxFieldBytes || len(r.Reason) > maxFieldBytes || len(r.Peer) > maxFieldBytes || len(r.OfferedALPN[0]) > maxALPNBytes {
		t.Fatalf("fields not capped: SNI %d, reason %d, peer %d, ALPN %d", len(r.SNI), len(r.Reason), len(r.Peer), len(r.OfferedALPN[0]))
	}
	if strings.ContainsAny(r.SNI+r.Reason+r.OfferedALPN[0], "\x01\x02\x7f") {
		t.Fatal("control characters stored")
	}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) > MaxRecordBytes {
		t.Fatalf("worst-case record of %d bytes, over %d", len(b), MaxRecordBytes)
	}
	t.Logf("worst-case record: %d bytes", len(b))
	// Through the listener's capture too.
	chi := &tls.ClientHelloInfo{CipherSuites: many, SupportedVersions: many, SupportedCurves: curves, SupportedProtos: alpn, ServerName: "x"}
	if hf := helloFrom(chi); len(hf.Suites) != maxSuites || len(hf.ALPN) != maxALPN || len(hf.Versions) != maxVersions || len(hf.Groups) != maxGroups {
		t.Fatalf("helloFrom keeps %d suites, %d ALPN", len(hf.Suites), len(hf.ALPN))
	}
}

func FuzzReadRefusals(f *testing.F) {
	var buf bytes.Buffer
	path := filepath.Join(f.TempDir(), "seed")
	lf, _ := OpenRefusalFile(path)
	_ = lf.LogRefusal(Default().NewRefusal(day, "192.0.2.1:1", &Hello{Versions: []uint16{tls.VersionTLS10}}, errors.New("x")))
	_ = lf.Close()
	seed, _ := os.ReadFile(path)
	buf.Write(seed)
	f.Add(buf.Bytes())
	f.Add([]byte("{}\n{\"time\":1}\n\n"))
	f.Add([]byte(`{"time":"2026-03-10T15:00:00Z","kind":"suppressed","count":99}` + "\n"))
	f.Add(bytes.Repeat([]byte("x"), 70000))
	f.Fuzz(func(t *testing.T, data []byte) {
		recs, skipped, err := ReadRefusals(bytes.NewReader(data), time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		if len(recs)+skipped > bytes.Count(data, []byte("\n"))+1 {
			t.Fatalf("%d records and %d skipped from %d lines", len(recs), skipped, bytes.Count(data, []byte("\n"))+1)
		}
		sum := Default().Summarize(recs, 400, day)
		if len(sum) != 400 {
			t.Fatal("summary length")
		}
	})
}

func TestListenerLogLimit(t *testing.T) {
	var clock atomic.Int64
	clock.Store(day.UnixNano())
	log := new(memLog)
	p := Default()
	pk := newPKI(t)
	l := p.Listen(listenTCP(t), p.ServerConfig(pk.serverCert(), pk.ca.Pool(), nil), log,
		ListenerOptions{MaxLogPerMinute: 3, Now: func() time.Time { return time.Unix(0, clock.Load()).UTC() }, HandshakeTimeout: time.Second})
	t.Cleanup(func() { l.Close() })
	garbage := func() {
		c, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		_, _ = c.Write([]byte("GET / HTTP/1.0\r\n\r\n"))
		_, _ = io.Copy(io.Discard, c)
		c.Close()
	}
	for i := 0; i < 10; i++ {
		garbage()
	}
	waitFor(t, "3 records", func() bool { return len(log.records()) == 3 })
	clock.Add(int64(time.Minute))
	garbage()
	waitFor(t, "suppressed record", func() bool { return len(log.records()) == 5 })
	recs := log.records()
	if recs[0].Kind != KindMalformed || recs[3].Kind != KindSuppressed || recs[3].Count != 7 || recs[4].Kind != KindMalformed {
		t.Fatalf("records %+v", recs)
	}
	if s := p.Summarize(recs, 1, day); s[0].Refused != 11 {
		t.Fatalf("summary counts %d refusals, want 11", s[0].Refused)
	}
}
