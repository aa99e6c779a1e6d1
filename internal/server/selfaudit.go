package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/coffer-backup/coffer/internal/serverdb"
	"github.com/coffer-backup/coffer/internal/tlspolicy"
	"github.com/coffer-backup/coffer/internal/tlsscan"
)

// DefaultSelfAuditInterval is how often the server scans its own port.
const DefaultSelfAuditInterval = 24 * time.Hour

// selfScanDomain ends the SNI of self-scans: a reserved name (RFC 2606) no
// real client sends.
const selfScanDomain = ".self-scan.coffer.invalid"

// IsSelfScanSNI reports whether sni has the form of the self-audit's scans
// (reports leave those out only if the scan is also on record).
func IsSelfScanSNI(sni string) bool {
	return len(sni) > len(selfScanDomain) && strings.HasSuffix(sni, selfScanDomain)
}

// SelfAudit scans the server's own port with tlsscan.Scan, at start and
// every Interval, and raises an alert (an error in the log and an
// ActionAlert event in the database) when the port offers anything weaker
// than the policy or cannot be scanned.
//
// Each scan sends a fresh random SNI and records it first as an
// ActionSelfScan event, so reports can leave the scan's refused handshakes
// out without trusting anything a peer can choose.
type SelfAudit struct {
	Addr     string // host:port to scan (see SelfScanAddr)
	Policy   tlspolicy.Policy
	DB       serverdb.DB
	Logger   *slog.Logger
	Interval time.Duration    // default DefaultSelfAuditInterval
	Timeout  time.Duration    // per handshake (default 5s)
	Now      func() time.Time // default time.Now
	// OnAlert, if set, is called with each alert's message (the server
	// raises a tls-audit-failed alert with it); it must not block.
	OnAlert func(msg string)
}

// SelfScanAddr returns the address to scan for a listener bound to addr:
// the loopback address when it listens on every address.
func SelfScanAddr(addr net.Addr) string {
	host, port, err := net.SplitHostPort(addr.String())
	if err != nil {
		return addr.String()
	}
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

func (a *SelfAudit) now() time.Time {
	if a.Now != nil {
		return a.Now()
	}
	return time.Now()
}

func (a *SelfAudit) log() *slog.Logger {
	if a.Logger != nil {
		return a.Logger
	}
	return slog.Default()
}

// Run scans at once and then every Interval until ctx is done.
func (a *SelfAudit) Run(ctx context.Context) {
	interval := a.Interval
	if interval <= 0 {
		interval = DefaultSelfAuditInterval
	}
	for {
		_, _ = a.Once(ctx)
		t := time.NewTimer(interval)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// Once runs one scan. It returns the report (nil if the scan could not
// start) and whether the server passed: false also when it could not be
// scanned, which is alerted as well.
func (a *SelfAudit) Once(ctx context.Context) (*tlsscan.Report, bool) {
	sni, err := selfScanName()
	if err != nil {
		a.alert(ctx, "TLS self-audit could not start: "+err.Error())
		return nil, false
	}
	if err := a.DB.LogEvent(ctx, serverdb.Event{Time: a.now(), Action: serverdb.ActionSelfScan, Detail: sni}); err != nil {
		a.log().Warn("TLS self-audit: record scan", "err", err)
	}
	policy := a.Policy
	timeout := a.Timeout
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	start := time.Now()
	rep, err := tlsscan.Scan(ctx, a.Addr, tlsscan.Options{ServerName: sni, Policy: &policy, Timeout: timeout, MaxDuration: 5 * time.Minute, Now: a.now})
	if ctx.Err() != nil {
		return rep, false
	}
	if rep == nil || len(rep.Versions) == 0 {
		a.alert(ctx, fmt.Sprintf("TLS self-audit could not scan %s: %v", a.Addr, err))
		return rep, false
	}
	var fails, warns []string
	for _, f := range rep.Findings {
		switch f.Severity {
		case tlsscan.SeverityFail:
			fails = append(fails, f.Message)
		case tlsscan.SeverityWarn:
			warns = append(warns, f.Message)
		}
	}
	if err != nil {
		fails = append(fails, "scan incomplete: "+err.Error())
	}
	if !rep.Pass || err != nil {
		a.alert(ctx, fmt.Sprintf("TLS self-audit of %s: the server offers something weaker than its policy: %s", a.Addr, strings.Join(fails, "; ")))
		return rep, false
	}
	a.log().Info("TLS self-audit passed", "addr", a.Addr, "warnings", strings.Join(warns, "; "), "duration", time.Since(start).Round(time.Millisecond))
	return rep, true
}

func (a *SelfAudit) alert(ctx context.Context, msg string) {
	a.log().Error(msg)
	if len(msg) > 2048 {
		msg = msg[:2048]
	}
	if err := a.DB.LogEvent(ctx, serverdb.Event{Time: a.now(), Action: serverdb.ActionAlert, Detail: msg}); err != nil {
		a.log().Error("TLS self-audit: record alert", "err", err)
	}
	if a.OnAlert != nil {
		a.OnAlert(msg)
	}
}

// selfScanName returns a fresh, unguessable SNI for one self-scan.
func selfScanName() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return "s" + hex.EncodeToString(b[:]) + selfScanDomain, nil
}
