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
	return s.renew(ctx, renewal{what: "client", name: name, record: name,
		current: `SELECT cert_serial, revoked_at FROM clients WHERE name = ?`,
		update:  `UPDATE clients SET cert_serial = ?, not_after = ? WHERE name = ?`}, old, newSerial, notAfter, now)
}

// RenewUser implements DB.
func (s *Store) RenewUser(ctx context.Context, name string, old, newSerial *big.Int, notAfter, now time.Time) error {
	return s.renew(ctx, renewal{what: "user", name: name, record: UserRevocationName(name),
		current: `SELECT cert_serial, 0 FROM users WHERE name = ?`,
		update:  `UPDATE users SET cert_serial = ?, not_after = ? WHERE name = ?`}, old, newSerial, notAfter, now)
}

// renewal is what differs between renewing a client's and a user's
// certificate: the statements, and the name revocations and events carry.
type renewal struct {
	what, name, record string
	current, update    string // select serial and revoked_at; set serial and not_after
}

// renew replaces the certificate old of r.name with newSerial, revokes
// old (ReasonSuperseded) and logs an ActionRenew event, in one
// transaction: ErrNotFound for no such name, ErrRevoked for a revoked
// client, ErrSuperseded when old is not its current certificate.
func (s *Store) renew(ctx context.Context, r renewal, old, newSerial *big.Int, notAfter, now time.Time) error {
	oldText, err := serialText(old)
	if err != nil {
		return fmt.Errorf("renew %s %s: %w", r.what, r.name, err)
	}
	newText, err := serialText(newSerial)
	if err != nil {
		return fmt.Errorf("renew %s %s: %w", r.what, r.name, err)
	}
	if notAfter.IsZero() || now.IsZero() || oldText == newText {
		return fmt.Errorf("renew %s %s: %w: needs times and a new serial", r.what, r.name, ErrInvalidRecord)
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("renew %s %s: %w", r.what, r.name, err)
	}
	defer func() { _ = tx.Rollback() }()
	var (
		current   string
		revokedAt int64
	)
	err = tx.QueryRowContext(ctx, r.current, r.name).Scan(&current, &revokedAt)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("renew %s %q: %w", r.what, r.name, ErrNotFound)
	case err != nil:
		return fmt.Errorf("renew %s %s: %w", r.what, r.name, err)
	case revokedAt != 0:
		return fmt.Errorf("renew %s %s: %w", r.what, r.name, ErrRevoked)
	case current != oldText:
		return fmt.Errorf("renew %s %s: serial %s: %w", r.what, r.name, oldText, ErrSuperseded)
	}
	if _, err := tx.ExecContext(ctx, r.update, newText, nanos(notAfter), r.name); err != nil {
		return fmt.Errorf("renew %s %s: %w", r.what, r.name, err)
	}
	if err := supersede(ctx, tx, oldText, r.record, now); err != nil {
		return fmt.Errorf("renew %s %s: %w", r.what, r.name, err)
	}
	if err := insertEvent(ctx, tx, Event{Time: now, Client: r.record, Action: ActionRenew, Detail: "serial=" + newText + " replaces=" + oldText}); err != nil {
		return fmt.Errorf("renew %s %s: %w", r.what, r.name, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("renew %s %s: %w", r.what, r.name, err)
	}
	return nil
}

// supersede revokes a replaced serial.
func supersede(ctx context.Context, x execer, serial, client string, now time.Time) error {
	_, err := x.ExecContext(ctx, `INSERT INTO revocations (serial, client, revoked_at, reason) VALUES (?, ?, ?, ?) ON CONFLICT(serial) DO NOTHING`,
		serial, client, nanos(now), ReasonSuperseded)
	return err
}
