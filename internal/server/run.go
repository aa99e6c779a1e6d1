package server

import (
	"cmp"
	"context"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"sync"
	"time"

	"github.com/coffer-backup/coffer/internal/alert"
	"github.com/coffer-backup/coffer/internal/auditlog"
	"github.com/coffer-backup/coffer/internal/fleet/api"
	"github.com/coffer-backup/coffer/internal/fleet/policy"
	"github.com/coffer-backup/coffer/internal/pki"
	"github.com/coffer-backup/coffer/internal/server/alerting"
	"github.com/coffer-backup/coffer/internal/server/audit"
	"github.com/coffer-backup/coffer/internal/server/enrollment"
	"github.com/coffer-backup/coffer/internal/server/fleet"
	"github.com/coffer-backup/coffer/internal/server/fleet/control"
	"github.com/coffer-backup/coffer/internal/server/replicate"
	"github.com/coffer-backup/coffer/internal/server/state"
	"github.com/coffer-backup/coffer/internal/serverdb"
	"github.com/coffer-backup/coffer/internal/tlspolicy"
)

// RunOptions configure Run.
type RunOptions struct {
	Dir string
	// Listen overrides the configuration file's listen address.
	Listen string
	// Logger receives the server's log (default slog.Default()).
	Logger *slog.Logger
	// SelfAuditInterval is how often the server scans its own port (default
	// DefaultSelfAuditInterval); negative disables the self-audit.
	SelfAuditInterval time.Duration
	// RequestLog, if set, receives a JSON line per request (Config.RequestLog).
	RequestLog io.Writer
	// KeepDays is how many days of refused handshakes and requests
	// (tls_refusals) and audit events the database keeps (default
	// DefaultKeepDays); older ones are deleted at start and daily, once
	// the audit log has them.
	KeepDays int
	// TrashDays is how many days objects deleted under a grant stay in the
	// trash before they are gone (default DefaultTrashDays); checked at
	// start and hourly.
	TrashDays int
	// Version is the server's version; fleet status flags older agents.
	Version string
	// MissedInterval is how often missed backups are looked for (default
	// control.DefaultMissedInterval).
	MissedInterval time.Duration
	// AuditSyslog, if set, also sends each audit log entry to syslog
	// (RFC 5424) at NETWORK:ADDRESS (audit.ParseSyslogAddr), from a queue:
	// a syslog server that is slow or down never holds the server up.
	AuditSyslog string
	// OfflineAfter is how long an agent that has connected may be without
	// its control stream before the agent-offline alert (default
	// api.OfflineAfter, three missed pings).
	OfflineAfter time.Duration
	// AuditTakeover is how often a server sharing its database checks
	// that it writes the audit log, or whether it can take over (default
	// DefaultAuditTakeover).
	AuditTakeover time.Duration
}

// offlineAfter is OfflineAfter or its default.
func (o RunOptions) offlineAfter() time.Duration {
	if o.OfflineAfter > 0 {
		return o.OfflineAfter
	}
	return api.OfflineAfter
}

// replicateTick is how often the server looks for a replication pass
// that is due: one small query.
const replicateTick = 2 * time.Second

// DefaultKeepDays is RunOptions.KeepDays's default.
const DefaultKeepDays = 90

// pruneLog deletes the refusals and events older than keep days before
// now, and logs what it removed.
func pruneLog(ctx context.Context, db *serverdb.SQLite, keep int, now time.Time, log *slog.Logger) {
	refusals, events, err := db.PruneBefore(ctx, now.AddDate(0, 0, -keep))
	if err != nil {
		log.Warn("prune the refusal log and audit events", "err", err)
		return
	}
	if refusals+events > 0 {
		log.Info("pruned the refusal log and audit events", "keep_days", keep, "refusals", refusals, "events", events)
	}
}

// pruneLogDaily runs pruneLog now and every 24 hours until ctx is done.
func pruneLogDaily(ctx context.Context, db *serverdb.SQLite, keep int, log *slog.Logger) {
	t := time.NewTicker(24 * time.Hour)
	defer t.Stop()
	for {
		pruneLog(ctx, db, keep, time.Now(), log)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// purgeTrashHourly empties the trash of what is older than days (not
// positive: DefaultTrashDays), now and every hour until ctx is done.
func purgeTrashHourly(ctx context.Context, srv *Server, days int, log *slog.Logger) {
	if days <= 0 {
		days = DefaultTrashDays
	}
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		if n, err := srv.PurgeTrash(ctx, days, time.Now()); err != nil {
			log.Warn("purge the trash", "err", err)
		} else if n > 0 {
			log.Info("purged the trash", "trash_days", days, "objects", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Run serves a state directory made by state.Init until ctx is done: the
// storage API, enrollment and renewal on one mutual-TLS port with the
// configured policy, and the TLS self-audit. It refuses to start when the
// directory belongs to another user or any file or directory of its tree
// fails state.CheckTree (writable by others, a secret readable by them).
func Run(ctx context.Context, opts RunOptions) error {
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	dir := opts.Dir
	if err := state.CheckOwner(dir); err != nil {
		return err
	}
	if err := state.CheckTree(dir); err != nil {
		return fmt.Errorf("refusing to start: %w", err)
	}
	st, err := state.LoadSettings(dir)
	if err != nil {
		return err
	}
	listen := st.Listen
	if opts.Listen != "" {
		listen = opts.Listen
	}
	ca, err := pki.LoadCA(dir)
	if err != nil {
		return err
	}
	kp, err := pki.LoadKeyPair(dir, pki.ServerCertFile, pki.ServerKeyFile)
	if err != nil {
		return fmt.Errorf("load server certificate: %w", err)
	}
	db, err := openDB(ctx, dir, ca)
	if err != nil {
		return err
	}
	defer func() { _ = db.Close() }()

	disp, raiser, channels := newAlerts(dir, db, log)
	var srv *Server
	// The audit log's writer: this server, or, when several share the
	// database, perhaps another (auditwriter.go).
	election := &auditElection{db: db, log: log, interval: cmp.Or(opts.AuditTakeover, DefaultAuditTakeover),
		open: func(ctx context.Context) (*audit.Trail, func(), error) {
			return openAudit(ctx, dir, db, opts.AuditSyslog, log)
		},
		stopped: func(msg string) {
			raiser.Raise(alert.Event{Kind: alert.AuditLogStopped, Time: time.Now().UTC(), Summary: msg})
		}}
	fl, ctl, err := newFleet(dir, db, ca, log, channels, election, control.Config{Version: opts.Version,
		Seen:   func(c string) { srv.NoteContact(c) },
		Usage:  func(c string) (int64, bool) { return srv.StoredBytes(c) },
		Notify: raiser.Control})
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	fl.Register(mux)
	enr := &enrollment.Enroller{CA: ca, DB: db, ClientTTL: st.ClientCertTTL, Logger: log, PolicyPub: fl.PublicKey()}
	srv, err = New(Config{Dir: dir, DB: db, Logger: log, Enroll: enr, Renew: http.HandlerFunc(enr.Renew), RequestLog: opts.RequestLog,
		Control: ctl, Fleet: mux, FleetAccess: fl.Access, Login: fl.Login})
	if err != nil {
		return err
	}
	defer func() { _ = srv.Close() }()
	// After New, which holds the state directory's lock: only the one
	// server of a directory marks its jobs.
	if err := ctl.Recover(ctx); err != nil {
		return err
	}
	enr.Changed = srv.Refresh
	fl.SetChanged(srv.Refresh)
	// After New: the log is appended under the state directory's lock.
	if err := election.start(ctx); err != nil {
		return err
	}
	defer election.close()

	conf := st.Policy.ServerConfig(kp.TLSCertificate(ca.Cert), ca.Pool(), srv.VerifyConnection)
	if err := CheckTLSConfig(conf); err != nil {
		return err
	}
	inner, err := net.Listen("tcp", listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	addr := ServerAddrFor(kp.Cert, inner.Addr())
	if made, err := state.EnsureAdmin(ctx, dir, db, ca, state.AdminOptions{Server: addr, PolicyPub: fl.PublicKey(), TTL: st.ClientCertTTL, Now: time.Now()}); err != nil {
		_ = inner.Close()
		return err
	} else if made {
		log.Info("the fleet had no administrator: wrote the first administrator's identity", "dir", filepath.Join(dir, state.AdminDir), "server", addr)
	}
	ln := st.Policy.Listen(inner, conf, db.RefusalLog(), tlspolicy.ListenerOptions{})
	log.Info("coffer server listening", "addr", inner.Addr().String(), "dir", dir,
		"min_tls", tlsVersionName(st.Policy.MinVersion), "server_cert_expires", kp.Cert.NotAfter.UTC().Format(time.DateOnly))

	var wg sync.WaitGroup
	actx, stopAudit := context.WithCancel(ctx)
	keep := opts.KeepDays
	if keep <= 0 {
		keep = DefaultKeepDays
	}
	wg.Add(2)
	go func() {
		defer wg.Done()
		election.run(actx)
	}()
	go func() {
		defer wg.Done()
		pruneLogDaily(actx, db, keep, log)
	}()
	wg.Add(1)
	go func() {
		defer wg.Done()
		ctl.WatchMissed(actx, opts.MissedInterval)
	}()
	wg.Add(1)
	go func() {
		defer wg.Done()
		purgeTrashHourly(actx, srv, opts.TrashDays, log)
	}()
	repl := &replicate.Scheduler{Dir: dir, Source: replicate.Source{Store: srv.store}, DB: db, Logger: log, Tick: replicateTick}
	startAlerts(actx, &wg, disp, raiser, &alerting.Watch{Store: db, Raise: raiser.Raise, OfflineAfter: opts.offlineAfter(), CertTTL: st.ClientCertTTL, Logger: log,
		Online: func(c string) bool { _, ok := ctl.Hub().Online(c); return ok }, Lags: replicationLags(repl.Source, db)})
	wg.Add(1)
	go func() {
		defer wg.Done()
		repl.Run(actx)
	}()
	if opts.SelfAuditInterval >= 0 {
		audit := &SelfAudit{Addr: SelfScanAddr(inner.Addr()), Policy: st.Policy, DB: db, Logger: log, Interval: opts.SelfAuditInterval,
			OnAlert: func(msg string) {
				raiser.Raise(alert.Event{Kind: alert.TLSAuditFailed, Time: time.Now().UTC(), Summary: msg})
			}}
		wg.Add(1)
		go func() {
			defer wg.Done()
			audit.Run(actx)
		}()
	}
	err = srv.Serve(ctx, ln)
	stopAudit()
	wg.Wait()
	return err
}

// openDB opens the state database dir's configuration names, which must
// belong to ca's fleet (state.CheckDatabaseCA).
func openDB(ctx context.Context, dir string, ca *pki.CA) (*serverdb.Store, error) {
	db, err := state.OpenDB(ctx, dir)
	if err != nil {
		return nil, err
	}
	if err := state.CheckDatabaseCA(ctx, db, ca); err != nil {
		_ = db.Close()
		return nil, err
	}
	return db, nil
}

// newFleet makes the fleet's two halves: the administration (users,
// groups, policies signed with the policy key, which it makes for a state
// directory that has none) and the control connection, which serves the
// policies the administration signs and hears of their changes.
// cc carries control's hooks; its store, policies and key are set here.
func newFleet(dir string, db *serverdb.SQLite, ca *pki.CA, log *slog.Logger, alerts fleet.AlertAdmin, trail *auditElection, cc control.Config) (*fleet.Fleet, *control.Control, error) {
	pkey, made, err := state.EnsurePolicyKey(dir)
	if err != nil {
		return nil, nil, err
	}
	if made {
		log.Info("made the policy signing key of a state directory that had none", "file", filepath.Join(dir, policy.KeyFile))
	}
	fl, err := fleet.New(fleet.Config{Store: db, CA: ca, Key: pkey, Logger: log, Alerts: alerts, Audit: trail,
		AuditLog: func(ctx context.Context, since time.Time, fn func(auditlog.Entry) error) error {
			if err := trail.Sync(ctx); err != nil {
				return err
			}
			return audit.Scan(dir, since, fn)
		}})
	if err != nil {
		return nil, nil, err
	}
	cc.Store, cc.Logger, cc.Policies, cc.PolicyKey, cc.Audit = db, log, fl, fl.PublicKey(), trail
	ctl, err := control.New(cc)
	if err != nil {
		return nil, nil, err
	}
	fl.OnPolicyChange(ctl.PolicyChanged)
	return fl, ctl, nil
}

// newAlerts makes the alert dispatcher over the state database, with the
// default retries (docs/fleet.md, "Outbox, retries, digest"), the raiser
// that feeds it and the channels' administration.
func newAlerts(dir string, db *serverdb.SQLite, log *slog.Logger) (*alert.Dispatcher, *alerting.Raiser, *alerting.Channels) {
	// Default options and a store: NewDispatcher cannot fail.
	disp, _ := alert.NewDispatcher(db, alert.Options{Logger: log})
	raiser := alerting.NewRaiser(disp, db.GroupOf, log)
	return disp, raiser, &alerting.Channels{Dir: filepath.Join(dir, alerting.Dir), Store: db, Dispatcher: disp}
}

// replicationLags returns the lag of every replication target and its
// --alert-lag, for the replication-lag alert.
func replicationLags(src replicate.Source, db *serverdb.SQLite) func(context.Context, time.Time) (map[string]alerting.Lag, error) {
	return func(ctx context.Context, now time.Time) (map[string]alerting.Lag, error) {
		targets, err := db.ReplicaTargets(ctx)
		if err != nil {
			return nil, err
		}
		out := make(map[string]alerting.Lag, len(targets))
		for _, t := range targets {
			st, err := replicate.StatusOf(ctx, src, db, t.Name, now)
			if err != nil {
				return out, fmt.Errorf("target %s: %w", t.Name, err)
			}
			out[t.Name] = alerting.Lag{Lag: st.Lag, Threshold: t.AlertLag}
		}
		return out, nil
	}
}

// startAlerts runs the alert dispatcher, the raiser that feeds its
// outbox and the watch of offline agents and expiring certificates,
// until ctx is done.
func startAlerts(ctx context.Context, wg *sync.WaitGroup, disp *alert.Dispatcher, raiser *alerting.Raiser, watch *alerting.Watch) {
	wg.Add(3)
	go func() {
		defer wg.Done()
		_ = disp.Run(ctx)
	}()
	go func() {
		defer wg.Done()
		raiser.Run(ctx)
	}()
	go func() {
		defer wg.Done()
		watch.Run(ctx, 0)
	}()
}

// ServerAddrFor is the HOST:PORT an identity made by the running server
// records: the certificate's first name and the port it listens on.
func ServerAddrFor(cert *x509.Certificate, listen net.Addr) string {
	var names []string
	names = append(names, cert.DNSNames...)
	for _, ip := range cert.IPAddresses {
		names = append(names, ip.String())
	}
	return state.ServerAddr(names, listen.String())
}

// openAudit opens the audit log of dir (making the audit key of a state
// directory older than the log) with its syslog sink, if any, and returns
// it with the function that closes it all.
func openAudit(ctx context.Context, dir string, db *serverdb.SQLite, syslog string, log *slog.Logger) (*audit.Trail, func(), error) {
	key, err := state.EnsureAuditKey(dir)
	if err != nil {
		return nil, nil, err
	}
	opts := audit.Options{Dir: dir, DB: db, Key: key, Logger: log}
	var (
		conn  *auditlog.SyslogSink
		async *audit.AsyncSink
	)
	if syslog != "" {
		network, addr, err := audit.ParseSyslogAddr(syslog)
		if err != nil {
			return nil, nil, err
		}
		if conn, err = auditlog.NewSyslog(network, addr, auditlog.SyslogOptions{}); err != nil {
			return nil, nil, err
		}
		async = audit.NewAsyncSink(conn, 0, log)
		opts.Sinks = []auditlog.Sink{async}
	}
	closeSinks := func() {
		if async != nil {
			async.Close()
			_ = conn.Close()
		}
	}
	trail, err := audit.Open(ctx, opts)
	if err != nil {
		closeSinks()
		return nil, nil, err
	}
	h := trail.Head()
	log.Info("audit log open", "dir", filepath.Join(dir, state.AuditDir), "seq", h.Seq, "syslog", syslog)
	return trail, func() {
		cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := trail.Close(cctx); err != nil {
			log.Error("close the audit log", "err", err)
		}
		closeSinks()
		if async != nil && async.Failed()+async.Dropped() > 0 {
			log.Warn("audit log: entries not sent to syslog (the files keep them)", "failed", async.Failed(), "dropped", async.Dropped())
		}
	}, nil
}

func tlsVersionName(v uint16) string {
	if v == 0x0304 {
		return "1.3"
	}
	return "1.2"
}
