package serverdb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/big"
	"time"

	"github.com/coffer-backup/coffer/internal/pki"
)

// EnrollClient implements DB.
func (s *Store) EnrollClient(ctx context.Context, c Client, now time.Time) error {
	if err := pki.ValidateClientName(c.Name); err != nil {
		return fmt.Errorf("enroll client: %w: %w", ErrInvalidRecord, err)
	}
	serial, err := serialText(c.CertSerial)
	if err != nil {
		return fmt.Errorf("enroll client %s: %w", c.Name, err)
	}
	if c.QuotaBytes < 0 || c.Created.IsZero() || c.NotAfter.IsZero() || now.IsZero() {
		return fmt.Errorf("enroll client %s: %w: needs creation, expiry and event times and a quota >= 0", c.Name, ErrInvalidRecord)
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("enroll client %s: %w", c.Name, err)
	}
	defer func() { _ = tx.Rollback() }()
	var previous string
	err = tx.QueryRowContext(ctx, `SELECT cert_serial FROM clients WHERE name = ?`, c.Name).Scan(&previous)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("enroll client %s: %w", c.Name, err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO clients (name, cert_serial, not_after, created, last_contact, allow_delete, quota_bytes, revoked_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, 0)
		ON CONFLICT(name) DO UPDATE SET cert_serial = excluded.cert_serial, not_after = excluded.not_after, revoked_at = 0`,
		c.Name, serial, nanos(c.NotAfter), nanos(c.Created), nanos(c.LastContact), boolInt(c.AllowDelete), c.QuotaBytes); err != nil {
		return fmt.Errorf("enroll client %s: %w", c.Name, err)
	}
	if previous != "" && previous != serial {
		if err := supersede(ctx, tx, previous, c.Name, now); err != nil {
			return fmt.Errorf("enroll client %s: %w", c.Name, err)
		}
	}
	if err := insertEvent(ctx, tx, Event{Time: now, Client: c.Name, Action: ActionEnroll, Detail: "serial=" + serial}); err != nil {
		return fmt.Errorf("enroll client %s: %w", c.Name, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("enroll client %s: %w", c.Name, err)
	}
	return nil
}

// RenewClient implements DB.
func (s *Store) RenewClient(ctx context.Context, name string, old, newSerial *big.Int, notAfter, now time.Time) error {
	oldText, err := serialText(old)
	if err != nil {
		return fmt.Errorf("renew client %s: %w", name, err)
	}
	newText, err := serialText(newSerial)
	if err != nil {
		return fmt.Errorf("renew client %s: %w", name, err)
	}
	if notAfter.IsZero() || now.IsZero() || oldText == newText {
		return fmt.Errorf("renew client %s: %w: needs times and a new serial", name, ErrInvalidRecord)
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("renew client %s: %w", name, err)
	}
	defer func() { _ = tx.Rollback() }()
	var (
		current   string
		revokedAt int64
	)
	err = tx.QueryRowContext(ctx, `SELECT cert_serial, revoked_at FROM clients WHERE name = ?`, name).Scan(&current, &revokedAt)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("renew client %q: %w", name, ErrNotFound)
	case err != nil:
		return fmt.Errorf("renew client %s: %w", name, err)
	case revokedAt != 0:
		return fmt.Errorf("renew client %s: %w", name, ErrRevoked)
	case current != oldText:
		return fmt.Errorf("renew client %s: serial %s: %w", name, oldText, ErrSuperseded)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE clients SET cert_serial = ?, not_after = ? WHERE name = ?`, newText, nanos(notAfter), name); err != nil {
		return fmt.Errorf("renew client %s: %w", name, err)
	}
	if err := supersede(ctx, tx, oldText, name, now); err != nil {
		return fmt.Errorf("renew client %s: %w", name, err)
	}
	if err := insertEvent(ctx, tx, Event{Time: now, Client: name, Action: ActionRenew, Detail: "serial=" + newText + " replaces=" + oldText}); err != nil {
		return fmt.Errorf("renew client %s: %w", name, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("renew client %s: %w", name, err)
	}
	return nil
}

// supersede revokes a replaced serial.
func supersede(ctx context.Context, x execer, serial, client string, now time.Time) error {
	_, err := x.ExecContext(ctx, `INSERT INTO revocations (serial, client, revoked_at, reason) VALUES (?, ?, ?, ?) ON CONFLICT(serial) DO NOTHING`,
		serial, client, nanos(now), ReasonSuperseded)
	return err
}
