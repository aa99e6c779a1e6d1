package serverdb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"math/big"
	"os"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/coffer-backup/coffer/internal/pki"

	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// migrations[i] brings the schema from version i to i+1 (PRAGMA
// user_version). Applied migrations are never edited; changes append.
var migrations = []string{
	// 1: the initial schema. Times are Unix nanoseconds, 0 meaning "none".
	`CREATE TABLE clients (
		name         TEXT PRIMARY KEY,
		cert_serial  TEXT NOT NULL,
		not_after    INTEGER NOT NULL,
		created      INTEGER NOT NULL,
		last_contact INTEGER NOT NULL DEFAULT 0,
		allow_delete INTEGER NOT NULL DEFAULT 0,
		quota_bytes  INTEGER NOT NULL DEFAULT 0,
		revoked_at   INTEGER NOT NULL DEFAULT 0
	) STRICT;
	CREATE TABLE tokens (
		secret_hash BLOB PRIMARY KEY,
		client      TEXT NOT NULL,
		created     INTEGER NOT NULL,
		expires     INTEGER NOT NULL,
		used_at     INTEGER
	) STRICT;
	CREATE TABLE revocations (
		serial     TEXT PRIMARY KEY,
		client     TEXT NOT NULL,
		revoked_at INTEGER NOT NULL,
		reason     TEXT NOT NULL
	) STRICT;
	CREATE TABLE events (
		id     INTEGER PRIMARY KEY,
		time   INTEGER NOT NULL,
		client TEXT NOT NULL,
		repo   TEXT NOT NULL,
		object TEXT NOT NULL,
		action TEXT NOT NULL,
		detail TEXT NOT NULL
	) STRICT;
	CREATE INDEX events_time ON events(time);
	CREATE TABLE tls_refusals (
		id     INTEGER PRIMARY KEY,
		time   INTEGER NOT NULL,
		kind   TEXT NOT NULL,
		record TEXT NOT NULL
	) STRICT;
	CREATE INDEX tls_refusals_time ON tls_refusals(time);`,
	// 2: refusals aggregated per UTC day, source address and kind (and
	// self-scan name): one row counts the repeats (refusals.go). Rows of
	// version 1 keep day ''.
	`ALTER TABLE tls_refusals ADD COLUMN day TEXT NOT NULL DEFAULT '';
	ALTER TABLE tls_refusals ADD COLUMN source TEXT NOT NULL DEFAULT '';
	ALTER TABLE tls_refusals ADD COLUMN scan TEXT NOT NULL DEFAULT '';
	ALTER TABLE tls_refusals ADD COLUMN count INTEGER NOT NULL DEFAULT 1;
	ALTER TABLE tls_refusals ADD COLUMN last INTEGER NOT NULL DEFAULT 0;
	UPDATE tls_refusals SET last = time;
	CREATE UNIQUE INDEX tls_refusals_key ON tls_refusals(day, source, kind, scan) WHERE day != '';
	CREATE INDEX tls_refusals_last ON tls_refusals(last);`,
	// 3: per-client caps on object and repository counts (0: the server's
	// default).
	`ALTER TABLE clients ADD COLUMN max_objects INTEGER NOT NULL DEFAULT 0;
	ALTER TABLE clients ADD COLUMN max_repos INTEGER NOT NULL DEFAULT 0;`,
	// 4: the fleet's jobs (one row a job, kept as its history), what the
	// server knows of each host's agent, and the missed-backup watch
	// (jobs.go).
	`CREATE TABLE jobs (
		id               TEXT PRIMARY KEY,
		client           TEXT NOT NULL,
		kind             TEXT NOT NULL,
		repository       TEXT NOT NULL,
		state            TEXT NOT NULL,
		scheduled        INTEGER NOT NULL,
		created          INTEGER NOT NULL,
		updated          INTEGER NOT NULL,
		start            INTEGER NOT NULL DEFAULT 0,
		end_time         INTEGER NOT NULL DEFAULT 0,
		stats            TEXT NOT NULL DEFAULT '',
		snapshot         TEXT NOT NULL DEFAULT '',
		error            TEXT NOT NULL DEFAULT '',
		files            TEXT NOT NULL DEFAULT '',
		spec             TEXT NOT NULL DEFAULT '',
		ordered_by       TEXT NOT NULL DEFAULT '',
		cancel_requested INTEGER NOT NULL DEFAULT 0,
		server_set       INTEGER NOT NULL DEFAULT 0
	) STRICT;
	CREATE INDEX jobs_client ON jobs(client, kind, created);
	CREATE INDEX jobs_state ON jobs(state, client);
	CREATE TABLE agents (
		client    TEXT PRIMARY KEY,
		version   TEXT NOT NULL DEFAULT '',
		connected INTEGER NOT NULL DEFAULT 0,
		dropped   INTEGER NOT NULL DEFAULT 0
	) STRICT;
	CREATE TABLE rpo_watch (
		client      TEXT NOT NULL,
		repository  TEXT NOT NULL,
		since       INTEGER NOT NULL,
		last_missed INTEGER NOT NULL DEFAULT 0,
		PRIMARY KEY (client, repository)
	) STRICT;`,
	// 5: alert channels (their JSON, internal/alert's Channel) and the
	// outbox of events waiting for delivery (alerts.go).
	`CREATE TABLE alert_channels (
		name    TEXT PRIMARY KEY,
		config  TEXT NOT NULL,
		updated INTEGER NOT NULL
	) STRICT;
	CREATE TABLE alert_outbox (
		id           INTEGER PRIMARY KEY,
		channel      TEXT NOT NULL,
		event        TEXT NOT NULL,
		created      INTEGER NOT NULL,
		next_attempt INTEGER NOT NULL,
		attempts     INTEGER NOT NULL DEFAULT 0,
		last_error   TEXT NOT NULL DEFAULT '',
		state        TEXT NOT NULL DEFAULT 'pending',
		done         INTEGER NOT NULL DEFAULT 0
	) STRICT;
	CREATE INDEX alert_outbox_due ON alert_outbox(channel, state, next_attempt);
	CREATE INDEX alert_outbox_done ON alert_outbox(state, done);`,
	// 6: replication targets and what each holds (replication.go).
	`CREATE TABLE replica_targets (
		name          TEXT PRIMARY KEY,
		location      TEXT NOT NULL,
		clients       TEXT NOT NULL,
		schedule      TEXT NOT NULL,
		rate_limit    TEXT NOT NULL,
		run_window    TEXT NOT NULL,
		keep_deleted  INTEGER NOT NULL,
		created       INTEGER NOT NULL,
		last_start    INTEGER NOT NULL DEFAULT 0,
		last_success  INTEGER NOT NULL DEFAULT 0,
		last_error    TEXT NOT NULL DEFAULT '',
		last_error_at INTEGER NOT NULL DEFAULT 0
	) STRICT;
	CREATE TABLE replica_objects (
		target        TEXT NOT NULL,
		client        TEXT NOT NULL,
		repo          TEXT NOT NULL,
		kind          TEXT NOT NULL,
		name          TEXT NOT NULL,
		size          INTEGER NOT NULL,
		sha256        TEXT NOT NULL,
		tag           TEXT NOT NULL,
		replicated_at INTEGER NOT NULL,
		deleted_at    INTEGER NOT NULL DEFAULT 0,
		PRIMARY KEY (target, client, repo, kind, name)
	) STRICT;`,
	// 7: the fleet (fleet.go): persons with a role and a scope, groups of
	// clients, policy settings per group or client, the generation of each
	// client's policy, fleet-wide settings.
	`CREATE TABLE users (
		name        TEXT PRIMARY KEY,
		role        TEXT NOT NULL,
		scope       TEXT NOT NULL,
		created     INTEGER NOT NULL,
		cert_serial TEXT NOT NULL DEFAULT '',
		not_after   INTEGER NOT NULL DEFAULT 0
	) STRICT;
	CREATE TABLE fleet_groups (
		name    TEXT PRIMARY KEY,
		created INTEGER NOT NULL
	) STRICT;
	CREATE TABLE fleet_members (
		client TEXT PRIMARY KEY,
		grp    TEXT NOT NULL REFERENCES fleet_groups(name)
	) STRICT;
	CREATE TABLE fleet_policies (
		target   TEXT PRIMARY KEY,
		settings TEXT NOT NULL,
		updated  INTEGER NOT NULL
	) STRICT;
	CREATE TABLE fleet_generations (
		client     TEXT PRIMARY KEY,
		generation INTEGER NOT NULL,
		digest     BLOB NOT NULL,
		issued     INTEGER NOT NULL
	) STRICT;
	CREATE TABLE fleet_settings (
		key   TEXT PRIMARY KEY,
		value TEXT NOT NULL
	) STRICT;`,
	// 8: the audit log's kept chain head (D/audit, docs/fleet.md) and the
	// id of the last event appended to it: one row, written after each
	// append.
	`CREATE TABLE audit_head (
		id       INTEGER PRIMARY KEY CHECK (id = 1),
		seq      INTEGER NOT NULL,
		hash     BLOB NOT NULL,
		event_id INTEGER NOT NULL
	) STRICT;`,
	// 9: retention on server time (stamps.go): each snapshot object's
	// arrival on the server clock with a per-repository sequence number,
	// and the deletion grants prune jobs carry.
	`CREATE TABLE snapshot_stamps (
		client  TEXT NOT NULL,
		repo    TEXT NOT NULL,
		name    TEXT NOT NULL,
		arrived INTEGER NOT NULL,
		seq     INTEGER NOT NULL,
		PRIMARY KEY (client, repo, name)
	) STRICT;
	CREATE UNIQUE INDEX snapshot_stamps_seq ON snapshot_stamps(client, repo, seq);
	CREATE TABLE grants (
		job        TEXT PRIMARY KEY,
		client     TEXT NOT NULL,
		repo       TEXT NOT NULL,
		not_before INTEGER NOT NULL,
		not_after  INTEGER NOT NULL,
		snapshots  TEXT NOT NULL
	) STRICT;
	CREATE INDEX grants_client ON grants(client, repo, not_after);`,
	// 10: when a stamped snapshot object was deleted (0: it is there), so
	// retention counts only what exists; a restore from the trash clears it.
	`ALTER TABLE snapshot_stamps ADD COLUMN deleted INTEGER NOT NULL DEFAULT 0;`,
	// 11: each client's usage as its quota counts it (usage.go), shared by
	// the servers of one database.
	`CREATE TABLE client_usage (
		client  TEXT PRIMARY KEY,
		charged INTEGER NOT NULL,
		objects INTEGER NOT NULL,
		repos   INTEGER NOT NULL
	) STRICT;`,
	// 12: replication with object lock, parallel copies and a lag alert
	// threshold per target (replication.go); each copy's retention date.
	`ALTER TABLE replica_targets ADD COLUMN lock_days INTEGER NOT NULL DEFAULT 0;
	ALTER TABLE replica_targets ADD COLUMN parallel INTEGER NOT NULL DEFAULT 0;
	ALTER TABLE replica_targets ADD COLUMN alert_lag INTEGER NOT NULL DEFAULT 0;
	ALTER TABLE replica_objects ADD COLUMN retain_until INTEGER NOT NULL DEFAULT 0;`,
}

// SchemaVersion is the schema version this code writes.
var SchemaVersion = len(migrations)

// Store is the DB on an SQL engine: an SQLite file (Open) or a PostgreSQL
// database (OpenPostgres). Both engines run the same statements, rewritten
// for the engine by conn (engine.go), and keep times as Unix nanoseconds
// and serials as hex text, so every method returns the same on either.
type Store struct {
	db       *conn
	refusals *refusalBatch // RefusalLog's buffer, written once a second
}

// SQLite is the name Store had while SQLite was its only engine.
type SQLite = Store

var _ DB = (*Store)(nil)

// Open opens or creates the SQLite database at path (mode 0600), in WAL
// mode with a busy timeout so the server and admin commands can use it at
// once, and migrates its schema. It fails with ErrSchemaTooNew for a
// database written by a newer coffer.
func Open(ctx context.Context, path string) (*Store, error) {
	if path == "" || strings.ContainsAny(path, "?#") {
		return nil, fmt.Errorf("open database: unusable path %q", path)
	}
	// Create the file ourselves so it never exists with a wider mode; SQLite
	// gives the -wal and -shm files the same mode.
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600) // #nosec G304 -- the state database the admin named
	if err != nil {
		return nil, fmt.Errorf("open database: %w", err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("open database: %w", err)
	}
	dsn := path + "?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_pragma=foreign_keys(1)&_txlock=immediate"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}
	s := &Store{db: &conn{db: db, engine: engineSQLite}}
	s.refusals = newRefusalBatch(s)
	if err := s.migrateSQLite(ctx); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}
	return s, nil
}

func (s *Store) migrateSQLite(ctx context.Context) error {
	tx, err := s.db.BeginTx(ctx, nil) // BEGIN IMMEDIATE: one migrator at a time
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }()
	var v int
	if err := tx.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v); err != nil {
		return fmt.Errorf("read schema version: %w", err)
	}
	if v > len(migrations) {
		return fmt.Errorf("%w: version %d, this coffer knows %d", ErrSchemaTooNew, v, len(migrations))
	}
	for i := v; i < len(migrations); i++ {
		if _, err := tx.ExecContext(ctx, migrations[i]); err != nil {
			return fmt.Errorf("migrate schema to version %d: %w", i+1, err)
		}
		if _, err := tx.ExecContext(ctx, "PRAGMA user_version = "+strconv.Itoa(i+1)); err != nil {
			return fmt.Errorf("migrate schema to version %d: %w", i+1, err)
		}
	}
	return tx.Commit()
}

// Close closes the database.
func (s *Store) Close() error {
	s.refusals.stop()
	return s.db.Close()
}

func nanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromNanos(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

func serialText(s *big.Int) (string, error) {
	if s == nil || s.Sign() <= 0 {
		return "", fmt.Errorf("%w: certificate serial must be positive", ErrInvalidRecord)
	}
	return s.Text(16), nil
}

func parseSerial(s string) (*big.Int, error) {
	n, ok := new(big.Int).SetString(s, 16)
	if !ok || n.Sign() <= 0 {
		return nil, fmt.Errorf("%w: stored serial %q", ErrInvalidRecord, s)
	}
	return n, nil
}

func boolInt(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

// PutClient implements DB.
func (s *Store) PutClient(ctx context.Context, c Client) error {
	if err := pki.ValidateClientName(c.Name); err != nil {
		return fmt.Errorf("put client: %w: %w", ErrInvalidRecord, err)
	}
	serial, err := serialText(c.CertSerial)
	if err != nil {
		return fmt.Errorf("put client %s: %w", c.Name, err)
	}
	if c.QuotaBytes < 0 || c.MaxObjects < 0 || c.MaxRepos < 0 || c.Created.IsZero() || c.NotAfter.IsZero() {
		return fmt.Errorf("put client %s: %w: needs creation and expiry times and a quota and limits >= 0", c.Name, ErrInvalidRecord)
	}
	_, err = s.db.ExecContext(ctx, `INSERT INTO clients (name, cert_serial, not_after, created, last_contact, allow_delete, quota_bytes, revoked_at, max_objects, max_repos)
		VALUES (?, ?, ?, ?, ?, ?, ?, 0, ?, ?)
		ON CONFLICT(name) DO UPDATE SET cert_serial = excluded.cert_serial, not_after = excluded.not_after, revoked_at = 0`,
		c.Name, serial, nanos(c.NotAfter), nanos(c.Created), nanos(c.LastContact), boolInt(c.AllowDelete), c.QuotaBytes, c.MaxObjects, c.MaxRepos)
	if err != nil {
		return fmt.Errorf("put client %s: %w", c.Name, err)
	}
	return nil
}

const clientColumns = `name, cert_serial, not_after, created, last_contact, allow_delete, quota_bytes, revoked_at, max_objects, max_repos`

type scanner interface{ Scan(dest ...any) error }

func scanClient(r scanner) (Client, error) {
	var (
		c                                     Client
		serial                                string
		notAfter, created, contact, revokedAt int64
		allowDelete                           int64
	)
	if err := r.Scan(&c.Name, &serial, &notAfter, &created, &contact, &allowDelete, &c.QuotaBytes, &revokedAt, &c.MaxObjects, &c.MaxRepos); err != nil {
		return Client{}, err
	}
	var err error
	if c.CertSerial, err = parseSerial(serial); err != nil {
		return Client{}, err
	}
	c.NotAfter, c.Created, c.LastContact, c.RevokedAt = fromNanos(notAfter), fromNanos(created), fromNanos(contact), fromNanos(revokedAt)
	c.AllowDelete = allowDelete != 0
	return c, nil
}

// Client implements DB.
func (s *Store) Client(ctx context.Context, name string) (Client, error) {
	c, err := scanClient(s.db.QueryRowContext(ctx, `SELECT `+clientColumns+` FROM clients WHERE name = ?`, name))
	if errors.Is(err, sql.ErrNoRows) {
		return Client{}, fmt.Errorf("client %q: %w", name, ErrNotFound)
	}
	if err != nil {
		return Client{}, fmt.Errorf("client %q: %w", name, err)
	}
	return c, nil
}

// Clients implements DB.
func (s *Store) Clients(ctx context.Context) ([]Client, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+clientColumns+` FROM clients ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list clients: %w", err)
	}
	defer func() { _ = rows.Close() }()
	var out []Client
	for rows.Next() {
		c, err := scanClient(rows)
		if err != nil {
			return nil, fmt.Errorf("list clients: %w", err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list clients: %w", err)
	}
	return out, nil
}

// updateClient runs one UPDATE of a client and an audit event in one
// transaction; no such client is ErrNotFound.
func (s *Store) updateClient(ctx context.Context, name string, ev Event, query string, args ...any) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }()
	res, err := tx.ExecContext(ctx, query, args...)
	if err != nil {
		return err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return fmt.Errorf("client %q: %w", name, ErrNotFound)
	}
	if err := insertEvent(ctx, tx, ev); err != nil {
		return err
	}
	return tx.Commit()
}

// SetAllowDelete implements DB.
func (s *Store) SetAllowDelete(ctx context.Context, name string, allow bool, now time.Time) error {
	ev := Event{Time: now, Client: name, Action: ActionPolicy, Detail: "allow-delete=" + strconv.FormatBool(allow)}
	if err := s.updateClient(ctx, name, ev, `UPDATE clients SET allow_delete = ? WHERE name = ?`, boolInt(allow), name); err != nil {
		return fmt.Errorf("set allow-delete of %s: %w", name, err)
	}
	return nil
}

// SetQuota implements DB.
func (s *Store) SetQuota(ctx context.Context, name string, bytes int64, now time.Time) error {
	if bytes < 0 {
		return fmt.Errorf("set quota of %s: %w: negative quota", name, ErrInvalidRecord)
	}
	ev := Event{Time: now, Client: name, Action: ActionPolicy, Detail: "quota=" + strconv.FormatInt(bytes, 10)}
	if err := s.updateClient(ctx, name, ev, `UPDATE clients SET quota_bytes = ? WHERE name = ?`, bytes, name); err != nil {
		return fmt.Errorf("set quota of %s: %w", name, err)
	}
	return nil
}

// SetCountLimits implements DB.
func (s *Store) SetCountLimits(ctx context.Context, name string, maxObjects, maxRepos int64, now time.Time) error {
	if maxObjects < 0 || maxRepos < 0 {
		return fmt.Errorf("set count limits of %s: %w: negative limit", name, ErrInvalidRecord)
	}
	ev := Event{Time: now, Client: name, Action: ActionPolicy, Detail: "max-objects=" + strconv.FormatInt(maxObjects, 10) + " max-repos=" + strconv.FormatInt(maxRepos, 10)}
	if err := s.updateClient(ctx, name, ev, `UPDATE clients SET max_objects = ?, max_repos = ? WHERE name = ?`, maxObjects, maxRepos, name); err != nil {
		return fmt.Errorf("set count limits of %s: %w", name, err)
	}
	return nil
}

// Touch implements DB.
func (s *Store) Touch(ctx context.Context, name string, at time.Time) error {
	_, err := s.db.ExecContext(ctx, `UPDATE clients SET last_contact = ? WHERE name = ? AND last_contact < ?`, nanos(at), name, nanos(at))
	if err != nil {
		return fmt.Errorf("touch client %s: %w", name, err)
	}
	return nil
}

// TouchAll implements DB: one commit for every client, where one Touch
// each would sync the disk once per client (a thousand hosts holding
// control streams are a thousand contacts a flush).
func (s *Store) TouchAll(ctx context.Context, contacts map[string]time.Time) error {
	if len(contacts) == 0 {
		return nil
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("touch clients: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	for name, at := range contacts {
		if _, err := tx.ExecContext(ctx, `UPDATE clients SET last_contact = ? WHERE name = ? AND last_contact < ?`, nanos(at), name, nanos(at)); err != nil {
			return fmt.Errorf("touch client %s: %w", name, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("touch clients: %w", err)
	}
	return nil
}

// RevokeClient implements DB.
func (s *Store) RevokeClient(ctx context.Context, name string, now time.Time, reason string) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("revoke client %s: %w", name, err)
	}
	defer func() { _ = tx.Rollback() }()
	var serial string
	err = tx.QueryRowContext(ctx, `UPDATE clients SET revoked_at = ? WHERE name = ? RETURNING cert_serial`, nanos(now), name).Scan(&serial)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("revoke client %q: %w", name, ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("revoke client %s: %w", name, err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO revocations (serial, client, revoked_at, reason) VALUES (?, ?, ?, ?) ON CONFLICT(serial) DO NOTHING`,
		serial, name, nanos(now), reason); err != nil {
		return fmt.Errorf("revoke client %s: %w", name, err)
	}
	if err := insertEvent(ctx, tx, Event{Time: now, Client: name, Action: ActionRevoke, Detail: reason}); err != nil {
		return fmt.Errorf("revoke client %s: %w", name, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("revoke client %s: %w", name, err)
	}
	return nil
}

// Revoke implements DB.
func (s *Store) Revoke(ctx context.Context, r Revocation) error {
	serial, err := serialText(r.Serial)
	if err != nil {
		return fmt.Errorf("revoke: %w", err)
	}
	_, err = s.db.ExecContext(ctx, `INSERT INTO revocations (serial, client, revoked_at, reason) VALUES (?, ?, ?, ?) ON CONFLICT(serial) DO NOTHING`,
		serial, r.Client, nanos(r.RevokedAt), r.Reason)
	if err != nil {
		return fmt.Errorf("revoke serial %s: %w", serial, err)
	}
	return nil
}

// Revocations implements DB.
func (s *Store) Revocations(ctx context.Context) ([]Revocation, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT serial, client, revoked_at, reason FROM revocations ORDER BY revoked_at, serial`)
	if err != nil {
		return nil, fmt.Errorf("list revocations: %w", err)
	}
	defer func() { _ = rows.Close() }()
	var out []Revocation
	for rows.Next() {
		var (
			r      Revocation
			serial string
			at     int64
		)
		if err := rows.Scan(&serial, &r.Client, &at, &r.Reason); err != nil {
			return nil, fmt.Errorf("list revocations: %w", err)
		}
		if r.Serial, err = parseSerial(serial); err != nil {
			return nil, fmt.Errorf("list revocations: %w", err)
		}
		r.RevokedAt = fromNanos(at)
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list revocations: %w", err)
	}
	return out, nil
}

type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

func insertEvent(ctx context.Context, x execer, e Event) error {
	_, err := x.ExecContext(ctx, `INSERT INTO events (time, client, repo, object, action, detail) VALUES (?, ?, ?, ?, ?, ?)`,
		nanos(e.Time), text(e.Client), text(e.Repo), text(e.Object), text(e.Action), text(e.Detail))
	return err
}

// text is s as both engines store it: valid UTF-8 without NUL bytes
// (PostgreSQL refuses either in TEXT). Events carry names a peer chose,
// as a refused enrollment's claimed client name; each bad byte becomes
// U+FFFD, on either engine alike.
func text(s string) string {
	if utf8.ValidString(s) && !strings.Contains(s, "\x00") {
		return s
	}
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\uFFFD")
}

// LogEvent implements DB.
func (s *Store) LogEvent(ctx context.Context, e Event) error {
	if e.Time.IsZero() || e.Action == "" {
		return fmt.Errorf("log event: %w: time and action are required", ErrInvalidRecord)
	}
	// In a write transaction: on PostgreSQL, events get their IDs in
	// commit order only under its lock (writeLockKey).
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("log event: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	if err := insertEvent(ctx, tx, e); err != nil {
		return fmt.Errorf("log event: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("log event: %w", err)
	}
	return nil
}

// Events implements DB.
func (s *Store) Events(ctx context.Context, since time.Time, limit int) ([]Event, error) {
	q, args := withLimit(`SELECT id, time, client, repo, object, action, detail FROM events WHERE time >= ? ORDER BY time, id`, limit, nanos(since))
	return s.queryEvents(ctx, q, args)
}

// EventsAfter implements DB.
func (s *Store) EventsAfter(ctx context.Context, after int64, limit int) ([]Event, error) {
	q, args := withLimit(`SELECT id, time, client, repo, object, action, detail FROM events WHERE id > ? ORDER BY id`, limit, after)
	return s.queryEvents(ctx, q, args)
}

// withLimit appends LIMIT ? and limit to query and args when limit > 0
// (PostgreSQL has no LIMIT -1).
func withLimit(query string, limit int, args ...any) (string, []any) {
	if limit <= 0 {
		return query, args
	}
	return query + ` LIMIT ?`, append(args, limit)
}

func (s *Store) queryEvents(ctx context.Context, query string, args []any) ([]Event, error) {
	rows, err := s.db.QueryContext(ctx, query, args...) // #nosec G202 -- a fixed query and a bound limit
	if err != nil {
		return nil, fmt.Errorf("read events: %w", err)
	}
	defer func() { _ = rows.Close() }()
	var out []Event
	for rows.Next() {
		var (
			e Event
			t int64
		)
		if err := rows.Scan(&e.ID, &t, &e.Client, &e.Repo, &e.Object, &e.Action, &e.Detail); err != nil {
			return nil, fmt.Errorf("read events: %w", err)
		}
		e.Time = fromNanos(t)
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read events: %w", err)
	}
	return out, nil
}

// AuditHead implements DB.
func (s *Store) AuditHead(ctx context.Context) (AuditHead, error) {
	var (
		h    AuditHead
		seq  int64
		hash []byte
	)
	err := s.db.QueryRowContext(ctx, `SELECT seq, hash, event_id FROM audit_head WHERE id = 1`).Scan(&seq, &hash, &h.EventID)
	if errors.Is(err, sql.ErrNoRows) {
		return AuditHead{}, nil
	}
	if err != nil {
		return AuditHead{}, fmt.Errorf("read audit head: %w", err)
	}
	if seq < 0 || len(hash) != len(h.Hash) || h.EventID < 0 {
		return AuditHead{}, fmt.Errorf("read audit head: %w: seq %d, %d-byte hash, event %d", ErrInvalidRecord, seq, len(hash), h.EventID)
	}
	h.Seq = uint64(seq)
	copy(h.Hash[:], hash)
	return h, nil
}

// SetAuditHead implements DB.
func (s *Store) SetAuditHead(ctx context.Context, h AuditHead) error {
	if h.Seq > math.MaxInt64 || h.EventID < 0 {
		return fmt.Errorf("store audit head: %w: seq %d, event %d", ErrInvalidRecord, h.Seq, h.EventID)
	}
	_, err := s.db.ExecContext(ctx, `INSERT INTO audit_head (id, seq, hash, event_id) VALUES (1, ?, ?, ?)
		ON CONFLICT(id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash, event_id = excluded.event_id`,
		int64(h.Seq), h.Hash[:], h.EventID) // #nosec G115 -- checked above
	if err != nil {
		return fmt.Errorf("store audit head: %w", err)
	}
	return nil
}

// SwapAuditHead implements DB.
func (s *Store) SwapAuditHead(ctx context.Context, old, h AuditHead) error {
	if h.Seq > math.MaxInt64 || h.EventID < 0 {
		return fmt.Errorf("store audit head: %w: seq %d, event %d", ErrInvalidRecord, h.Seq, h.EventID)
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store audit head: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	var (
		kept AuditHead
		seq  int64
		hash []byte
	)
	err = tx.QueryRowContext(ctx, `SELECT seq, hash, event_id FROM audit_head WHERE id = 1`).Scan(&seq, &hash, &kept.EventID)
	switch {
	case errors.Is(err, sql.ErrNoRows):
	case err != nil:
		return fmt.Errorf("store audit head: %w", err)
	case seq < 0 || len(hash) != len(kept.Hash):
		return fmt.Errorf("store audit head: %w: kept seq %d, %d-byte hash", ErrInvalidRecord, seq, len(hash))
	default:
		kept.Seq = uint64(seq)
		copy(kept.Hash[:], hash)
	}
	if kept != old {
		return fmt.Errorf("store audit head seq %d: %w: the kept head is seq %d, not seq %d: another server appended to the audit log", h.Seq, ErrConflict, kept.Seq, old.Seq)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO audit_head (id, seq, hash, event_id) VALUES (1, ?, ?, ?)
		ON CONFLICT(id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash, event_id = excluded.event_id`,
		int64(h.Seq), h.Hash[:], h.EventID); err != nil { // #nosec G115 -- checked above
		return fmt.Errorf("store audit head: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("store audit head: %w", err)
	}
	return nil
}

// Tokens implements DB.
func (s *Store) Tokens() pki.TokenStore { return tokenStore{s.db} }

// tokenStore is the pki.TokenStore of the database.
type tokenStore struct{ db *conn }

// Put implements pki.TokenStore.
func (t tokenStore) Put(ctx context.Context, rec pki.TokenRecord) error {
	if err := pki.ValidateTokenName(rec.ClientName); err != nil {
		return fmt.Errorf("store token: %w", err)
	}
	if rec.ExpiresAt.IsZero() {
		return fmt.Errorf("store token: %w: no expiry", ErrInvalidRecord)
	}
	res, err := t.db.ExecContext(ctx, `INSERT INTO tokens (secret_hash, client, created, expires, used_at) VALUES (?, ?, ?, ?, NULL) ON CONFLICT(secret_hash) DO NOTHING`,
		rec.SecretHash[:], rec.ClientName, nanos(rec.CreatedAt), nanos(rec.ExpiresAt))
	if err != nil {
		return fmt.Errorf("store token: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("store token: %w", err)
	} else if n == 0 {
		return pki.ErrTokenExists
	}
	return nil
}

// Redeem implements pki.TokenStore: one conditional UPDATE marks the token
// used only if it names clientName and is unused and unexpired, so of
// concurrent redeemers exactly one sees a row, and a token whose name was
// edited changes nothing; the others learn why from a second read in the
// same (immediate) transaction.
func (t tokenStore) Redeem(ctx context.Context, secretHash [32]byte, clientName string, now time.Time) (pki.TokenRecord, error) {
	tx, err := t.db.BeginTx(ctx, nil)
	if err != nil {
		return pki.TokenRecord{}, fmt.Errorf("redeem token: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	rec := pki.TokenRecord{SecretHash: secretHash}
	var created, expires, used int64
	err = tx.QueryRowContext(ctx, `UPDATE tokens SET used_at = ? WHERE secret_hash = ? AND client = ? AND used_at IS NULL AND expires > ? RETURNING client, created, expires, used_at`,
		nanos(now), secretHash[:], clientName, nanos(now)).Scan(&rec.ClientName, &created, &expires, &used)
	if err == nil {
		if err := tx.Commit(); err != nil {
			return pki.TokenRecord{}, fmt.Errorf("redeem token: %w", err)
		}
		rec.CreatedAt, rec.ExpiresAt, rec.UsedAt = fromNanos(created), fromNanos(expires), fromNanos(used)
		return rec, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return pki.TokenRecord{}, fmt.Errorf("redeem token: %w", err)
	}
	var usedAt sql.NullInt64
	var client string
	err = tx.QueryRowContext(ctx, `SELECT client, used_at FROM tokens WHERE secret_hash = ?`, secretHash[:]).Scan(&client, &usedAt)
	switch {
	case errors.Is(err, sql.ErrNoRows), err == nil && client != clientName:
		return pki.TokenRecord{}, pki.ErrTokenUnknown
	case err != nil:
		return pki.TokenRecord{}, fmt.Errorf("redeem token: %w", err)
	case usedAt.Valid:
		return pki.TokenRecord{}, pki.ErrTokenUsed
	default:
		return pki.TokenRecord{}, pki.ErrTokenExpired
	}
}
