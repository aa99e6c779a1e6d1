package alerting

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/coffer-backup/coffer/internal/alert"
	"github.com/coffer-backup/coffer/internal/serverdb"
)

// DefaultCertWarning is how long before a client certificate expires its
// cert-expiring alert is raised (at most a quarter of the certificate's
// lifetime, so a short-lived certificate that its agent renews on time
// raises none).
const DefaultCertWarning = 14 * 24 * time.Hour

// DefaultWatchInterval is how often Watch looks.
const DefaultWatchInterval = 10 * time.Second

// WatchStore is what Watch reads of the state database.
type WatchStore interface {
	Clients(ctx context.Context) ([]serverdb.Client, error)
	Agents(ctx context.Context) (map[string]serverdb.Agent, error)
}

// Watch raises the alerts nothing else reports as it happens: an agent
// that has had no stream for OfflineAfter (agent-offline, once per
// absence) and a client certificate within its warning of expiry
// (cert-expiring, once per certificate). What it raised is kept in
// memory: after a restart an absence or a certificate still in its
// warning raises its alert once more.
type Watch struct {
	Store WatchStore
	Raise func(alert.Event)
	// Online reports whether client has a control stream open.
	Online func(client string) bool
	// OfflineAfter is how long without a stream makes an agent offline.
	OfflineAfter time.Duration
	// CertWarning: see DefaultCertWarning (0: that).
	CertWarning time.Duration
	// CertTTL is the lifetime of the client certificates the server issues.
	CertTTL time.Duration
	Now     func() time.Time
	Logger  *slog.Logger

	seen    map[string]time.Time // when each agent was last seen online
	offline map[string]bool      // agents whose absence was alerted
	expiry  map[string]time.Time // certificates alerted, by client: their expiry
}

// Run checks every interval (DefaultWatchInterval if not positive) until
// ctx is done.
func (w *Watch) Run(ctx context.Context, interval time.Duration) {
	if interval <= 0 {
		interval = DefaultWatchInterval
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if err := w.Check(ctx); err != nil && ctx.Err() == nil && w.Logger != nil {
			w.Logger.Warn("alert watch", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Check looks once. It is not safe for concurrent use.
func (w *Watch) Check(ctx context.Context) error {
	if w.seen == nil {
		w.seen, w.offline, w.expiry = map[string]time.Time{}, map[string]bool{}, map[string]time.Time{}
	}
	now := time.Now()
	if w.Now != nil {
		now = w.Now()
	}
	clients, err := w.Store.Clients(ctx)
	if err != nil {
		return err
	}
	agents, err := w.Store.Agents(ctx)
	if err != nil {
		return err
	}
	for _, cl := range clients {
		if cl.Revoked() {
			continue
		}
		if a, ok := agents[cl.Name]; ok {
			w.checkOnline(cl, a, now)
		}
		w.checkCert(cl, now)
	}
	return nil
}

func (w *Watch) checkOnline(cl serverdb.Client, a serverdb.Agent, now time.Time) {
	if w.Online(cl.Name) {
		w.seen[cl.Name] = now
		w.offline[cl.Name] = false
		return
	}
	last := w.seen[cl.Name]
	for _, t := range []time.Time{a.Connected, cl.LastContact} {
		if t.After(last) {
			last = t
		}
	}
	if w.offline[cl.Name] || last.IsZero() || now.Sub(last) < w.OfflineAfter {
		return
	}
	w.offline[cl.Name] = true
	w.Raise(alert.Event{Kind: alert.AgentOffline, Client: cl.Name, Time: now.UTC(),
		Summary: fmt.Sprintf("the agent of %s has had no control connection since %s", cl.Name, last.UTC().Format(time.RFC3339)),
		Details: map[string]string{"last_seen": last.UTC().Format(time.RFC3339), "agent_version": a.Version}})
}

func (w *Watch) checkCert(cl serverdb.Client, now time.Time) {
	warn := w.CertWarning
	if warn <= 0 {
		warn = DefaultCertWarning
	}
	if w.CertTTL > 0 {
		warn = min(warn, w.CertTTL/4)
	}
	if cl.NotAfter.IsZero() || cl.NotAfter.Sub(now) > warn || w.expiry[cl.Name].Equal(cl.NotAfter) {
		return
	}
	w.expiry[cl.Name] = cl.NotAfter
	what := "expires"
	if !cl.NotAfter.After(now) {
		what = "expired"
	}
	w.Raise(alert.Event{Kind: alert.CertExpiring, Client: cl.Name, Time: now.UTC(),
		Summary: fmt.Sprintf("the certificate of %s %s %s", cl.Name, what, cl.NotAfter.UTC().Format(time.RFC3339)),
		Details: map[string]string{"not_after": cl.NotAfter.UTC().Format(time.RFC3339), "serial": serial(cl)}})
}

func serial(cl serverdb.Client) string {
	if cl.CertSerial == nil {
		return ""
	}
	return cl.CertSerial.Text(16)
}
