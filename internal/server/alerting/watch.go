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

// DefaultLagThreshold is how far behind a replica may fall before its
// replication-lag alert, and DefaultLagInterval how often Watch asks
// (computing a replica's lag lists the primary's objects).
const (
	DefaultLagThreshold = 24 * time.Hour
	DefaultLagInterval  = 10 * time.Minute
)

// Lag is how far a replication target is behind, and the lag beyond
// which its replication-lag alert is raised (0: Watch.LagThreshold).
type Lag struct {
	Lag, Threshold time.Duration
}

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
	// Lags, if set, returns each replication target's lag (the age of the
	// oldest object it does not hold yet; 0: none) and its own threshold.
	Lags func(ctx context.Context, now time.Time) (map[string]Lag, error)
	// LagThreshold is the threshold of targets without their own, and
	// LagInterval how often Lags is asked: see DefaultLagThreshold (0:
	// those).
	LagThreshold, LagInterval time.Duration
	Now                       func() time.Time
	Logger                    *slog.Logger

	lagAt   time.Time            // when Lags was last asked
	lagging map[string]bool      // targets whose lag was alerted
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
		w.seen, w.offline, w.expiry, w.lagging = map[string]time.Time{}, map[string]bool{}, map[string]time.Time{}, map[string]bool{}
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
	return w.checkLag(ctx, now)
}

// checkLag raises replication-lag once for a target past its threshold,
// again only after it caught up below it.
func (w *Watch) checkLag(ctx context.Context, now time.Time) error {
	interval, fallback := w.LagInterval, w.LagThreshold
	if interval <= 0 {
		interval = DefaultLagInterval
	}
	if fallback <= 0 {
		fallback = DefaultLagThreshold
	}
	if w.Lags == nil || !w.lagAt.IsZero() && now.Sub(w.lagAt) < interval {
		return nil
	}
	w.lagAt = now
	lags, err := w.Lags(ctx, now)
	if err != nil {
		return fmt.Errorf("replication lag: %w", err)
	}
	for target, l := range lags {
		lag, threshold := l.Lag, l.Threshold
		if threshold <= 0 {
			threshold = fallback
		}
		if lag <= threshold {
			w.lagging[target] = false
			continue
		}
		if w.lagging[target] {
			continue
		}
		w.lagging[target] = true
		w.Raise(alert.Event{Kind: alert.ReplicationLag, Time: now.UTC(),
			Summary: fmt.Sprintf("replication target %s is %s behind (threshold %s)", target, lag.Round(time.Second), threshold),
			Details: map[string]string{"target": target, "lag": lag.Round(time.Second).String(), "threshold": threshold.String()}})
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
