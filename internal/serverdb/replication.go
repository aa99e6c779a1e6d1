package serverdb

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// ErrDuplicate is returned when a record to add exists already.
var ErrDuplicate = errors.New("record exists")

// ReplicaTarget is a replication target: where the server copies its
// clients' objects, which clients, when and how fast.
type ReplicaTarget struct {
	Name        string
	Location    string        // coffer://HOST:PORT or s3:...
	Clients     []string      // empty: every client
	Schedule    string        // a schedule expression; "": only replicate run
	RateLimit   string        // a rate schedule; "": unlimited
	Window      string        // HH:MM-HH:MM the scheduled passes keep to; "": any time
	KeepDeleted time.Duration // how long the target keeps what the primary deleted
	LockDays    int           // S3 object lock: copies are retained this many days (0: no lock)
	Parallel    int           // concurrent object copies (0: the default)
	AlertLag    time.Duration // lag beyond which replication-lag is raised (0: the server's default)
	Created     time.Time
	LastStart   time.Time // the last pass's start; zero: never
	LastSuccess time.Time // the end of the last complete pass; zero: never
	LastError   string    // the last failed pass's error, cleared by a success
	LastErrorAt time.Time
}

// ReplicaObject is one object a target holds: its size and content hash
// at the primary, the target's tag for it (an S3 ETag, a coffer server's
// digest), when it was verified there, and when the primary deleted it
// (zero: it has not), and until when an S3 object lock retains it (zero:
// not locked).
type ReplicaObject struct {
	Target, Client, Repo, Kind, Name string
	Size                             int64
	SHA256                           string
	Tag                              string
	ReplicatedAt                     time.Time
	DeletedAt                        time.Time
	RetainUntil                      time.Time
}

const targetColumns = `name, location, clients, schedule, rate_limit, run_window, keep_deleted, lock_days, parallel, alert_lag, ` +
	`created, last_start, last_success, last_error, last_error_at`

// AddReplicaTarget records a new target; a name in use is ErrDuplicate.
func (s *Store) AddReplicaTarget(ctx context.Context, t ReplicaTarget) error {
	if t.Name == "" || t.Location == "" || t.KeepDeleted < 0 || t.LockDays < 0 || t.Parallel < 0 || t.AlertLag < 0 {
		return fmt.Errorf("add replication target: %w", ErrInvalidRecord)
	}
	clients, err := json.Marshal(append([]string{}, t.Clients...))
	if err != nil {
		return err
	}
	res, err := s.db.ExecContext(ctx, `INSERT INTO replica_targets (`+targetColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, 0, '', 0)
		ON CONFLICT(name) DO NOTHING`,
		t.Name, t.Location, string(clients), t.Schedule, t.RateLimit, t.Window, int64(t.KeepDeleted), t.LockDays, t.Parallel, int64(t.AlertLag), nanos(t.Created))
	if err != nil {
		return fmt.Errorf("add replication target %s: %w", t.Name, err)
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		return fmt.Errorf("replication target %q: %w", t.Name, ErrDuplicate)
	}
	return nil
}

func scanTarget(r scanner) (ReplicaTarget, error) {
	var (
		t                                    ReplicaTarget
		clients                              string
		keep, created, start, success, errAt int64
		alertLag                             int64
	)
	if err := r.Scan(&t.Name, &t.Location, &clients, &t.Schedule, &t.RateLimit, &t.Window, &keep, &t.LockDays, &t.Parallel, &alertLag,
		&created, &start, &success, &t.LastError, &errAt); err != nil {
		return t, err
	}
	if err := json.Unmarshal([]byte(clients), &t.Clients); err != nil {
		return t, fmt.Errorf("replication target %s: clients: %w", t.Name, err)
	}
	t.KeepDeleted, t.AlertLag = time.Duration(keep), time.Duration(alertLag)
	t.Created, t.LastStart, t.LastSuccess, t.LastErrorAt = fromNanos(created), fromNanos(start), fromNanos(success), fromNanos(errAt)
	return t, nil
}

// ReplicaTarget returns the target name, or ErrNotFound.
func (s *Store) ReplicaTarget(ctx context.Context, name string) (ReplicaTarget, error) {
	t, err := scanTarget(s.db.QueryRowContext(ctx, `SELECT `+targetColumns+` FROM replica_targets WHERE name = ?`, name))
	if errors.Is(err, sql.ErrNoRows) {
		return t, fmt.Errorf("replication target %q: %w", name, ErrNotFound)
	}
	return t, err
}

// ReplicaTargets returns every target, by name.
func (s *Store) ReplicaTargets(ctx context.Context) ([]ReplicaTarget, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+targetColumns+` FROM replica_targets ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list replication targets: %w", err)
	}
	defer func() { _ = rows.Close() }()
	var out []ReplicaTarget
	for rows.Next() {
		t, err := scanTarget(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

// RemoveReplicaTarget forgets a target and what it holds (the target
// itself is not touched); no such target is ErrNotFound.
func (s *Store) RemoveReplicaTarget(ctx context.Context, name string) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }()
	res, err := tx.ExecContext(ctx, `DELETE FROM replica_targets WHERE name = ?`, name)
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		return fmt.Errorf("replication target %q: %w", name, ErrNotFound)
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM replica_objects WHERE target = ?`, name); err != nil {
		return err
	}
	return tx.Commit()
}

// ReplicaStarted records the start of a pass.
func (s *Store) ReplicaStarted(ctx context.Context, name string, at time.Time) error {
	_, err := s.db.ExecContext(ctx, `UPDATE replica_targets SET last_start = ? WHERE name = ?`, nanos(at), name)
	return err
}

// ReplicaFinished records the end of a pass: a success when passErr is
// "", which clears the last error, else the error.
func (s *Store) ReplicaFinished(ctx context.Context, name string, at time.Time, passErr string) error {
	var err error
	if passErr == "" {
		_, err = s.db.ExecContext(ctx, `UPDATE replica_targets SET last_success = ?, last_error = '', last_error_at = 0 WHERE name = ?`, nanos(at), name)
	} else {
		_, err = s.db.ExecContext(ctx, `UPDATE replica_targets SET last_error = ?, last_error_at = ? WHERE name = ?`, passErr, nanos(at), name)
	}
	return err
}

const objectColumns = `target, client, repo, kind, name, size, sha256, tag, replicated_at, deleted_at, retain_until`

// ReplicaObjects returns what the target holds of one repository; an
// empty client and repo return all it holds.
func (s *Store) ReplicaObjects(ctx context.Context, target, client, repo string) ([]ReplicaObject, error) {
	q := `SELECT ` + objectColumns + ` FROM replica_objects WHERE target = ?`
	args := []any{target}
	if client != "" || repo != "" {
		q += ` AND client = ? AND repo = ?`
		args = append(args, client, repo)
	}
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("replicated objects of %s: %w", target, err)
	}
	defer func() { _ = rows.Close() }()
	var out []ReplicaObject
	for rows.Next() {
		var o ReplicaObject
		var at, del, until int64
		if err := rows.Scan(&o.Target, &o.Client, &o.Repo, &o.Kind, &o.Name, &o.Size, &o.SHA256, &o.Tag, &at, &del, &until); err != nil {
			return nil, err
		}
		o.ReplicatedAt, o.DeletedAt, o.RetainUntil = fromNanos(at), fromNanos(del), fromNanos(until)
		out = append(out, o)
	}
	return out, rows.Err()
}

const putObject = `INSERT INTO replica_objects (` + objectColumns + `) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
	ON CONFLICT(target, client, repo, kind, name) DO UPDATE SET size = excluded.size, sha256 = excluded.sha256,
	tag = excluded.tag, replicated_at = excluded.replicated_at, deleted_at = excluded.deleted_at, retain_until = excluded.retain_until`

func putObjectArgs(o ReplicaObject) []any {
	return []any{o.Target, o.Client, o.Repo, o.Kind, o.Name, o.Size, o.SHA256, o.Tag, nanos(o.ReplicatedAt), nanos(o.DeletedAt), nanos(o.RetainUntil)}
}

// PutReplicaObject records (or updates) what a target holds.
func (s *Store) PutReplicaObject(ctx context.Context, o ReplicaObject) error {
	if _, err := s.db.ExecContext(ctx, putObject, putObjectArgs(o)...); err != nil {
		return fmt.Errorf("record replicated object %s/%s/%s/%s: %w", o.Client, o.Repo, o.Kind, o.Name, err)
	}
	return nil
}

// PutReplicaObjects records (or updates) several objects in one
// transaction: all or none.
func (s *Store) PutReplicaObjects(ctx context.Context, objs []ReplicaObject) error {
	if len(objs) == 0 {
		return nil
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }()
	for _, o := range objs {
		if _, err := tx.ExecContext(ctx, putObject, putObjectArgs(o)...); err != nil {
			return fmt.Errorf("record replicated object %s/%s/%s/%s: %w", o.Client, o.Repo, o.Kind, o.Name, err)
		}
	}
	return tx.Commit()
}

// RemoveReplicaObject forgets one object of a target.
func (s *Store) RemoveReplicaObject(ctx context.Context, o ReplicaObject) error {
	_, err := s.db.ExecContext(ctx, `DELETE FROM replica_objects WHERE target = ? AND client = ? AND repo = ? AND kind = ? AND name = ?`,
		o.Target, o.Client, o.Repo, o.Kind, o.Name)
	return err
}

// ReplicaKey names one object a target holds.
type ReplicaKey struct{ Client, Repo, Kind, Name string }

// ReplicaKeys returns the key of every object target holds (recorded
// deleted at the primary or not), for a status that must not read whole
// records.
func (s *Store) ReplicaKeys(ctx context.Context, target string) ([]ReplicaKey, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT client, repo, kind, name FROM replica_objects WHERE target = ?`, target)
	if err != nil {
		return nil, fmt.Errorf("replicated objects of %s: %w", target, err)
	}
	defer func() { _ = rows.Close() }()
	var out []ReplicaKey
	for rows.Next() {
		var k ReplicaKey
		if err := rows.Scan(&k.Client, &k.Repo, &k.Kind, &k.Name); err != nil {
			return nil, err
		}
		out = append(out, k)
	}
	return out, rows.Err()
}

// ReplicaSummary counts what a target holds.
type ReplicaSummary struct {
	Objects, Bytes int64 // held and still at the primary
	Deleted        int64 // held, deleted at the primary
	Locked         int64 // of Deleted, those an object lock still holds at the time asked
	// EarliestRetention is the earliest retention date of what is still
	// at the primary (zero: none is locked).
	EarliestRetention time.Time
}

// ReplicaSummaryOf counts what target holds, with its object locks as
// they stand at at.
func (s *Store) ReplicaSummaryOf(ctx context.Context, target string, at time.Time) (ReplicaSummary, error) {
	var sum ReplicaSummary
	var earliest sql.NullInt64
	err := s.db.QueryRowContext(ctx, `SELECT
		coalesce(sum(CASE WHEN deleted_at = 0 THEN 1 ELSE 0 END), 0), coalesce(sum(CASE WHEN deleted_at = 0 THEN size ELSE 0 END), 0),
		coalesce(sum(CASE WHEN deleted_at != 0 THEN 1 ELSE 0 END), 0),
		coalesce(sum(CASE WHEN deleted_at != 0 AND retain_until > ? THEN 1 ELSE 0 END), 0),
		min(CASE WHEN deleted_at = 0 AND retain_until != 0 THEN retain_until END)
		FROM replica_objects WHERE target = ?`, nanos(at), target).Scan(&sum.Objects, &sum.Bytes, &sum.Deleted, &sum.Locked, &earliest)
	if err != nil {
		return sum, fmt.Errorf("replicated objects of %s: %w", target, err)
	}
	if earliest.Valid {
		sum.EarliestRetention = fromNanos(earliest.Int64)
	}
	return sum, nil
}
