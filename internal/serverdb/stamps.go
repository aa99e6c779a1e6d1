package serverdb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Stamp is the server's record of a snapshot object's arrival: when it was
// stored, on the server's clock, and its place in the order of the
// repository's snapshots (1, 2, ...). Retention is evaluated on stamps,
// never on the time a client writes into its snapshot.
type Stamp struct {
	Client, Repo string
	Name         string // the snapshot object's name
	Arrived      time.Time
	Seq          int64
	// Deleted is when the object was deleted; zero while it exists.
	Deleted time.Time
}

// Grant is a prune job's deletion grant as the server enforces it: in the
// window [NotBefore, NotAfter] the client may delete the snapshot objects
// named in Snapshots of repository Repo, and pack, index and prune-record
// objects.
type Grant struct {
	Job                 string
	Client, Repo        string
	NotBefore, NotAfter time.Time
	Snapshots           []string
}

// Active reports whether the grant's window holds t.
func (g Grant) Active(t time.Time) bool { return !t.Before(g.NotBefore) && !t.After(g.NotAfter) }

// StampSnapshot records that snapshot object name of client's repository
// repo arrived at at, with the repository's next sequence number, and
// returns the stamp. A name stamped before keeps its first stamp (an
// object is stored once; a second upload of the same name is refused by
// the storage), which is returned.
func (s *Store) StampSnapshot(ctx context.Context, client, repo, name string, at time.Time) (Stamp, error) {
	if client == "" || repo == "" || name == "" || at.IsZero() {
		return Stamp{}, fmt.Errorf("%w: a stamp needs a client, repository, name and time", ErrInvalidRecord)
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return Stamp{}, fmt.Errorf("stamp snapshot %s: %w", name, err)
	}
	defer func() { _ = tx.Rollback() }()
	st, err := scanStamp(tx.QueryRowContext(ctx, `SELECT client, repo, name, arrived, seq, deleted FROM snapshot_stamps WHERE client = ? AND repo = ? AND name = ?`, client, repo, name))
	if err == nil && !st.Deleted.IsZero() {
		// Stored again after a deletion (the same content has the same
		// name): it exists again, with its first stamp.
		if _, err := tx.ExecContext(ctx, `UPDATE snapshot_stamps SET deleted = 0 WHERE client = ? AND repo = ? AND name = ?`, client, repo, name); err != nil {
			return Stamp{}, fmt.Errorf("stamp snapshot %s: %w", name, err)
		}
		st.Deleted = time.Time{}
		return st, tx.Commit()
	}
	if err == nil {
		return st, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return Stamp{}, fmt.Errorf("stamp snapshot %s: %w", name, err)
	}
	var last int64
	if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(seq), 0) FROM snapshot_stamps WHERE client = ? AND repo = ?`, client, repo).Scan(&last); err != nil {
		return Stamp{}, fmt.Errorf("stamp snapshot %s: %w", name, err)
	}
	st = Stamp{Client: client, Repo: repo, Name: name, Arrived: at.UTC(), Seq: last + 1}
	if _, err := tx.ExecContext(ctx, `INSERT INTO snapshot_stamps (client, repo, name, arrived, seq) VALUES (?, ?, ?, ?, ?)`,
		client, repo, name, nanos(st.Arrived), st.Seq); err != nil {
		return Stamp{}, fmt.Errorf("stamp snapshot %s: %w", name, err)
	}
	if err := tx.Commit(); err != nil {
		return Stamp{}, fmt.Errorf("stamp snapshot %s: %w", name, err)
	}
	return st, nil
}

func scanStamp(r scanner) (Stamp, error) {
	var st Stamp
	var arrived, deleted int64
	if err := r.Scan(&st.Client, &st.Repo, &st.Name, &arrived, &st.Seq, &deleted); err != nil {
		return Stamp{}, err
	}
	st.Arrived, st.Deleted = fromNanos(arrived), fromNanos(deleted)
	return st, nil
}

// Stamps returns every stamp of client's repository repo, in sequence
// order. Stamps outlive their objects: a caller joins them with the
// objects that exist.
func (s *Store) Stamps(ctx context.Context, client, repo string) ([]Stamp, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT client, repo, name, arrived, seq, deleted FROM snapshot_stamps WHERE client = ? AND repo = ? ORDER BY seq`, client, repo)
	if err != nil {
		return nil, fmt.Errorf("read stamps: %w", err)
	}
	defer func() { _ = rows.Close() }()
	var out []Stamp
	for rows.Next() {
		st, err := scanStamp(rows)
		if err != nil {
			return nil, fmt.Errorf("read stamps: %w", err)
		}
		out = append(out, st)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read stamps: %w", err)
	}
	return out, nil
}

// PutGrant records a deletion grant; ErrConflict if its job has one.
func (s *Store) PutGrant(ctx context.Context, g Grant) error {
	if g.Job == "" || g.Client == "" || g.Repo == "" || !g.NotAfter.After(g.NotBefore) {
		return fmt.Errorf("%w: a grant needs a job, client, repository and a window", ErrInvalidRecord)
	}
	for _, n := range g.Snapshots {
		if n == "" || strings.Contains(n, ",") {
			return fmt.Errorf("%w: grant: snapshot name %q", ErrInvalidRecord, n)
		}
	}
	res, err := s.db.ExecContext(ctx, `INSERT INTO grants (job, client, repo, not_before, not_after, snapshots) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(job) DO NOTHING`,
		g.Job, g.Client, g.Repo, nanos(g.NotBefore), nanos(g.NotAfter), strings.Join(g.Snapshots, ","))
	if err != nil {
		return fmt.Errorf("record grant of job %s: %w", g.Job, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("record grant of job %s: %w", g.Job, err)
	} else if n == 0 {
		return fmt.Errorf("record grant of job %s: %w", g.Job, ErrConflict)
	}
	return nil
}

// ActiveGrants returns the grants of client's repository repo whose window
// holds now, oldest first.
func (s *Store) ActiveGrants(ctx context.Context, client, repo string, now time.Time) ([]Grant, error) {
	t := nanos(now)
	rows, err := s.db.QueryContext(ctx, `SELECT job, client, repo, not_before, not_after, snapshots FROM grants
		WHERE client = ? AND repo = ? AND not_before <= ? AND not_after >= ? ORDER BY not_before, job`, client, repo, t, t)
	if err != nil {
		return nil, fmt.Errorf("read grants: %w", err)
	}
	defer func() { _ = rows.Close() }()
	var out []Grant
	for rows.Next() {
		var g Grant
		var nb, na int64
		var snaps string
		if err := rows.Scan(&g.Job, &g.Client, &g.Repo, &nb, &na, &snaps); err != nil {
			return nil, fmt.Errorf("read grants: %w", err)
		}
		g.NotBefore, g.NotAfter = fromNanos(nb), fromNanos(na)
		if snaps != "" {
			g.Snapshots = strings.Split(snaps, ",")
		}
		out = append(out, g)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read grants: %w", err)
	}
	return out, nil
}

// SetStampDeleted records that the stamped snapshot object name was
// deleted at at, or, with the zero at, that it is back (restored from the
// trash). A name without a stamp is left alone.
func (s *Store) SetStampDeleted(ctx context.Context, client, repo, name string, at time.Time) error {
	if _, err := s.db.ExecContext(ctx, `UPDATE snapshot_stamps SET deleted = ? WHERE client = ? AND repo = ? AND name = ?`, nanos(at), client, repo, name); err != nil {
		return fmt.Errorf("mark snapshot %s deleted: %w", name, err)
	}
	return nil
}
