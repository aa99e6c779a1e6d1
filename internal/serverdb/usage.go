package serverdb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// ErrOverLimit: a change of usage would take a client past its quota or
// one of its caps; nothing was changed.
var ErrOverLimit = errors.New("over the client's limit")

// Usage is what a client stores as its quota counts it: charged bytes,
// objects and repositories. The servers that share a database and a
// bucket keep it here, so that all of them enforce one quota; it is
// counted from the objects when no row exists, and again by server scrub.
type Usage struct {
	Client                  string
	Charged, Objects, Repos int64
}

// UsageLimits bound a change of usage (AddUsage); a field that is not
// positive bounds nothing.
type UsageLimits struct {
	QuotaBytes, MaxObjects, MaxRepos int64
}

// over reports whether u plus d passes l: only the growing fields count,
// so that a client over its quota may still remove.
func (l UsageLimits) over(u, d Usage) bool {
	return d.Charged > 0 && l.QuotaBytes > 0 && u.Charged+d.Charged > l.QuotaBytes ||
		d.Objects > 0 && l.MaxObjects > 0 && u.Objects+d.Objects > l.MaxObjects ||
		d.Repos > 0 && l.MaxRepos > 0 && u.Repos+d.Repos > l.MaxRepos
}

// Usage returns a client's recorded usage, or ErrNotFound if none is
// recorded.
func (s *Store) Usage(ctx context.Context, client string) (Usage, error) {
	return usageIn(ctx, s.db, client)
}

func usageIn(ctx context.Context, q rowExecer, client string) (Usage, error) {
	u := Usage{Client: client}
	err := q.QueryRowContext(ctx, `SELECT charged, objects, repos FROM client_usage WHERE client = ?`, client).Scan(&u.Charged, &u.Objects, &u.Repos)
	if errors.Is(err, sql.ErrNoRows) {
		return u, fmt.Errorf("usage of %s: %w", client, ErrNotFound)
	}
	if err != nil {
		return u, fmt.Errorf("usage of %s: %w", client, err)
	}
	return u, nil
}

// SetUsage records a client's usage as counted, replacing what was
// recorded.
func (s *Store) SetUsage(ctx context.Context, u Usage) error {
	if u.Client == "" {
		return fmt.Errorf("%w: usage without a client", ErrInvalidRecord)
	}
	_, err := s.db.ExecContext(ctx, `INSERT INTO client_usage (client, charged, objects, repos) VALUES (?, ?, ?, ?)
		ON CONFLICT (client) DO UPDATE SET charged = excluded.charged, objects = excluded.objects, repos = excluded.repos`,
		u.Client, u.Charged, u.Objects, u.Repos)
	if err != nil {
		return fmt.Errorf("set usage of %s: %w", u.Client, err)
	}
	return nil
}

// InitUsage records u unless a usage of the client is recorded already,
// and returns the recorded one: of two servers that counted at once, the
// first count stays.
func (s *Store) InitUsage(ctx context.Context, u Usage) (Usage, error) {
	if u.Client == "" {
		return u, fmt.Errorf("%w: usage without a client", ErrInvalidRecord)
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return u, fmt.Errorf("init usage of %s: %w", u.Client, err)
	}
	defer func() { _ = tx.Rollback() }()
	if _, err := tx.ExecContext(ctx, `INSERT INTO client_usage (client, charged, objects, repos) VALUES (?, ?, ?, ?) ON CONFLICT (client) DO NOTHING`,
		u.Client, u.Charged, u.Objects, u.Repos); err != nil {
		return u, fmt.Errorf("init usage of %s: %w", u.Client, err)
	}
	got, err := usageIn(ctx, tx, u.Client)
	if err != nil {
		return u, err
	}
	return got, tx.Commit()
}

// AddUsage adds d's fields to a client's recorded usage, in one write
// transaction, unless the result passes lim (ErrOverLimit, nothing
// changed); it returns the usage then recorded (before the change when
// refused). A client without recorded usage is ErrNotFound.
func (s *Store) AddUsage(ctx context.Context, client string, d Usage, lim UsageLimits) (Usage, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return Usage{}, fmt.Errorf("add usage of %s: %w", client, err)
	}
	defer func() { _ = tx.Rollback() }()
	u, err := usageIn(ctx, tx, client)
	if err != nil {
		return u, err
	}
	if lim.over(u, d) {
		return u, ErrOverLimit
	}
	u.Charged, u.Objects, u.Repos = u.Charged+d.Charged, u.Objects+d.Objects, u.Repos+d.Repos
	if _, err := tx.ExecContext(ctx, `UPDATE client_usage SET charged = ?, objects = ?, repos = ? WHERE client = ?`, u.Charged, u.Objects, u.Repos, client); err != nil {
		return u, fmt.Errorf("add usage of %s: %w", client, err)
	}
	if err := tx.Commit(); err != nil {
		return u, fmt.Errorf("add usage of %s: %w", client, err)
	}
	return u, nil
}
