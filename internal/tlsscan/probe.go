package tlsscan

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"time"
)

// probeResult is what one handshake revealed.
type probeResult struct {
	helloSeen     bool // the server chose parameters and sent its certificate
	certRequested bool
	version       uint16
	suite         uint16
	curve         tls.CurveID
	certs         []*x509.Certificate
	refusal       string // the handshake error, when the server refused
	err           error  // the probe could not run: no answer at all
}

// probe runs one handshake offering exactly version v, suites (all of v's
// when nil) and groups (all Go has when nil), and sends nothing after it.
func (s *scanner) probe(ctx context.Context, v uint16, suites []uint16, groups []tls.CurveID) probeResult {
	var res probeResult
	if err := ctx.Err(); err != nil {
		res.err = err
		return res
	}
	d := net.Dialer{Timeout: s.opts.Timeout}
	raw, err := d.DialContext(ctx, "tcp", s.addr)
	if err != nil {
		res.err = err
		return res
	}
	defer raw.Close()
	_ = raw.SetDeadline(time.Now().Add(s.opts.Timeout))
	cfg := probeConfig(v, suites, groups, s.opts.ServerName, s.opts.NextProtos, &res)
	hctx, cancel := context.WithTimeout(ctx, s.opts.Timeout)
	defer cancel()
	conn := tls.Client(raw, cfg)
	err = conn.HandshakeContext(hctx)
	if err == nil {
		cs := conn.ConnectionState()
		res.helloSeen, res.version, res.suite, res.curve = true, cs.Version, cs.CipherSuite, cs.CurveID
		res.certs = cs.PeerCertificates
		return res
	}
	var ne net.Error
	if !res.helloSeen && (errors.As(err, &ne) && ne.Timeout() || errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil) {
		res.err = fmt.Errorf("no answer: %w", err)
		return res
	}
	res.refusal = err.Error()
	return res
}

// probeConfig is the scanner's handshake config. It skips certificate
// verification because the scanner inspects arbitrary servers, and it
// never leaves this file: it is built per probe, used for one handshake
// after which nothing is sent, and dropped.
func probeConfig(v uint16, suites []uint16, groups []tls.CurveID, serverName string, nextProtos []string, res *probeResult) *tls.Config {
	if groups == nil {
		groups = scanGroups13
		if v < tls.VersionTLS13 {
			groups = scanGroups12
		}
	}
	return &tls.Config{
		MinVersion:       v,
		MaxVersion:       v,
		CipherSuites:     suites,
		CurvePreferences: groups,
		ServerName:       serverName,
		NextProtos:       nextProtos,
		// #nosec G402 -- scanner inspects, sends no data: it must see servers whose certificates it cannot verify, and it reports the chain instead.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			res.helloSeen, res.version, res.suite, res.curve = true, cs.Version, cs.CipherSuite, cs.CurveID
			res.certs = cs.PeerCertificates
			return nil
		},
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			res.certRequested = true
			return &tls.Certificate{}, nil
		},
	}
}
