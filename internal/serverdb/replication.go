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
	Created     time.Time
	LastStart   time.Time // the last pass's start; zero: never
	LastSuccess time.Time // the end of the last complete pass; zero: never
	LastError   string    // the last failed pass's error, cleared by a success
	LastErrorAt time.Time
}

// ReplicaObject is one object a target holds: its size and content hash
// at the primary, the target's tag for it (an S3 ETag, a coffer server's
// digest), when it was verified there, and when the primary deleted it
// (zero: it has not).
type ReplicaObject struct {
	Target, Client, Repo, Kind, Name string
	Size                             int64
	SHA256                           string
	Tag                              string
	ReplicatedAt                     time.Time
	DeletedAt                        time.Time
}

const targetColumns = `name, location, clients, schedule, rate_limit, run_window, keep_deleted, created, last_start, last_success, last_error, last_error_at`

// AddReplicaTarget records a new target; a name in use is ErrDuplicate.
func (s *Store) AddReplicaTarget(ctx context.Context, t ReplicaTarget) error {
	if t.Name == "" || t.Location == "" || t.KeepDeleted < 0 {
		return fmt.Errorf("add replication target: %w", ErrInvalidRecord)
	}
	clients, err := json.Marshal(append([]string{}, t.Clients...))
	if err != nil {
		return err
	}
	res, err := s.db.ExecContext(ctx, `INSERT INTO replica_targets (`+targetColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0, 0, '', 0)
		ON CONFLICT(name) DO NOTHING`,
		t.Name, t.Location, string(clients), t.Schedule, t.RateLimit, t.Window, int64(t.KeepDeleted), nanos(t.Created))
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
	)
	if err := r.Scan(&t.Name, &t.Location, &clients, &t.Schedule, &t.RateLimit, &t.Window, &keep, &created, &start, &success, &t.LastError, &errAt); err != nil {
		return t, err
	}
	if err := json.Unmarshal([]byte(clients), &t.Clients); err != nil {
		return t, fmt.Errorf("replication target %s: clients: %w", t.Name, err)
	}
	t.KeepDeleted = time.Duration(keep)
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

const objectColumns = `target, client, repo, kind, name, size, sha256, tag, replicated_at, deleted_at`

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
		var at, del int64
		if err := rows.Scan(&o.Target, &o.Client, &o.Repo, &o.Kind, &o.Name, &o.Size, &o.SHA256, &o.Tag, &at, &del); err != nil {
			return nil, err
		}
		o.ReplicatedAt, o.DeletedAt = fromNanos(at), fromNanos(del)
		out = append(out, o)
	}
	return out, rows.Err()
}

// PutReplicaObject records (or updates) what a target holds.
func (s *Store) PutReplicaObject(ctx context.Context, o ReplicaObject) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO replica_objects (`+objectColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT(target, client, repo, kind, name) DO UPDATE SET size = excluded.size, sha256 = excluded.sha256,
		tag = excluded.tag, replicated_at = excluded.replicated_at, deleted_at = excluded.deleted_at`,
		o.Target, o.Client, o.Repo, o.Kind, o.Name, o.Size, o.SHA256, o.Tag, nanos(o.ReplicatedAt), nanos(o.DeletedAt))
	if err != nil {
		return fmt.Errorf("record replicated object %s/%s/%s/%s: %w", o.Client, o.Repo, o.Kind, o.Name, err)
	}
	return nil
}

// RemoveReplicaObject forgets one object of a target.
func (s *Store) RemoveReplicaObject(ctx context.Context, o ReplicaObject) error {
	_, err := s.db.ExecContext(ctx, `DELETE FROM replica_objects WHERE target = ? AND client = ? AND repo = ? AND kind = ? AND name = ?`,
		o.Target, o.Client, o.Repo, o.Kind, o.Name)
	return err
}
