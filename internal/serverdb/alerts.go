package serverdb

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/coffer-backup/coffer/internal/alert"
)

var _ alert.Store = (*Store)(nil)

// AlertChannels implements alert.ChannelStore. A stored channel that no
// longer parses is an error naming it (it can still be removed).
func (s *Store) AlertChannels(ctx context.Context) ([]alert.Channel, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT name, config FROM alert_channels ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("read alert channels: %w", err)
	}
	defer func() { _ = rows.Close() }()
	var out []alert.Channel
	for rows.Next() {
		var name, config string
		if err := rows.Scan(&name, &config); err != nil {
			return nil, fmt.Errorf("read alert channels: %w", err)
		}
		c, err := alert.ParseChannel([]byte(config))
		if err != nil {
			return nil, fmt.Errorf("read alert channel %s: %w: %w", name, ErrInvalidRecord, err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read alert channels: %w", err)
	}
	return out, nil
}

// PutAlertChannel implements alert.ChannelStore.
func (s *Store) PutAlertChannel(ctx context.Context, c alert.Channel) error {
	config, err := c.Encode()
	if err != nil {
		return fmt.Errorf("put alert channel: %w", err)
	}
	_, err = s.db.ExecContext(ctx, `INSERT INTO alert_channels (name, config, updated) VALUES (?, ?, ?)
		ON CONFLICT(name) DO UPDATE SET config = excluded.config, updated = excluded.updated`,
		c.Name, string(config), time.Now().UnixNano())
	if err != nil {
		return fmt.Errorf("put alert channel %s: %w", c.Name, err)
	}
	return nil
}

// RemoveAlertChannel implements alert.ChannelStore: the channel and its
// pending items go in one transaction; its delivered and dead items stay
// until pruned.
func (s *Store) RemoveAlertChannel(ctx context.Context, name string) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("remove alert channel: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	res, err := tx.ExecContext(ctx, `DELETE FROM alert_channels WHERE name = ?`, name)
	if err != nil {
		return fmt.Errorf("remove alert channel %s: %w", name, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("remove alert channel: %w: %q", alert.ErrNoChannel, name)
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM alert_outbox WHERE channel = ? AND state = ?`, name, alert.Pending); err != nil {
		return fmt.Errorf("remove alert channel %s: %w", name, err)
	}
	return tx.Commit()
}

// EnqueueAlerts implements alert.Outbox.
func (s *Store) EnqueueAlerts(ctx context.Context, items []alert.Item) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("enqueue alerts: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	for _, it := range items {
		if it.Channel == "" || it.Created.IsZero() || it.NextAttempt.IsZero() {
			return fmt.Errorf("enqueue alerts: %w: an item needs a channel, a creation and a due time", ErrInvalidRecord)
		}
		event, err := json.Marshal(it.Event)
		if err != nil {
			return fmt.Errorf("enqueue alerts: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO alert_outbox (channel, event, created, next_attempt) VALUES (?, ?, ?, ?)`,
			it.Channel, string(event), nanos(it.Created), nanos(it.NextAttempt)); err != nil {
			return fmt.Errorf("enqueue alerts: %w", err)
		}
	}
	return tx.Commit()
}

const alertColumns = `id, channel, event, created, next_attempt, attempts, last_error, state, done`

// ClaimAlerts implements alert.Outbox.
func (s *Store) ClaimAlerts(ctx context.Context, channel string, now time.Time, lease time.Duration, limit int) ([]alert.Item, error) {
	tx, err := s.db.BeginTx(ctx, nil) // BEGIN IMMEDIATE: one claimer at a time
	if err != nil {
		return nil, fmt.Errorf("claim alerts: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	rows, err := tx.QueryContext(ctx, `SELECT `+alertColumns+` FROM alert_outbox
		WHERE channel = ? AND state = ? AND next_attempt <= ? ORDER BY next_attempt, id LIMIT ?`,
		channel, alert.Pending, nanos(now), limit)
	if err != nil {
		return nil, fmt.Errorf("claim alerts: %w", err)
	}
	items, err := scanAlerts(rows)
	if err != nil {
		return nil, fmt.Errorf("claim alerts: %w", err)
	}
	until := nanos(now.Add(lease))
	for _, it := range items {
		if _, err := tx.ExecContext(ctx, `UPDATE alert_outbox SET next_attempt = ? WHERE id = ?`, until, it.ID); err != nil {
			return nil, fmt.Errorf("claim alerts: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("claim alerts: %w", err)
	}
	return items, nil
}

// MarkAlertsDelivered implements alert.Outbox.
func (s *Store) MarkAlertsDelivered(ctx context.Context, ids []int64, at time.Time) error {
	return s.updateAlerts(ctx, ids, `UPDATE alert_outbox SET state = ?, done = ? WHERE id = ?`, alert.Delivered, nanos(at))
}

// MarkAlertsFailed implements alert.Outbox.
func (s *Store) MarkAlertsFailed(ctx context.Context, ids []int64, f alert.Failure) error {
	if f.Dead {
		return s.updateAlerts(ctx, ids, `UPDATE alert_outbox SET attempts = attempts + 1, last_error = ?, state = ?, done = ? WHERE id = ?`,
			f.Error, alert.Dead, nanos(f.At))
	}
	if f.Next.IsZero() {
		return fmt.Errorf("mark alerts failed: %w: no next attempt", ErrInvalidRecord)
	}
	return s.updateAlerts(ctx, ids, `UPDATE alert_outbox SET attempts = attempts + 1, last_error = ?, next_attempt = ? WHERE id = ?`,
		f.Error, nanos(f.Next))
}

// updateAlerts runs query with args and then each id, in one transaction.
func (s *Store) updateAlerts(ctx context.Context, ids []int64, query string, args ...any) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("update alerts: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	for _, id := range ids {
		if _, err := tx.ExecContext(ctx, query, append(args, id)...); err != nil {
			return fmt.Errorf("update alert %d: %w", id, err)
		}
	}
	return tx.Commit()
}

// AlertItems implements alert.Outbox.
func (s *Store) AlertItems(ctx context.Context, channel string) ([]alert.Item, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+alertColumns+` FROM alert_outbox WHERE ? = '' OR channel = ? ORDER BY id`, channel, channel)
	if err != nil {
		return nil, fmt.Errorf("read alert outbox: %w", err)
	}
	items, err := scanAlerts(rows)
	if err != nil {
		return nil, fmt.Errorf("read alert outbox: %w", err)
	}
	return items, nil
}

// PruneAlerts implements alert.Outbox.
func (s *Store) PruneAlerts(ctx context.Context, before time.Time) (int64, error) {
	res, err := s.db.ExecContext(ctx, `DELETE FROM alert_outbox WHERE state != ? AND done < ?`, alert.Pending, nanos(before))
	if err != nil {
		return 0, fmt.Errorf("prune alert outbox: %w", err)
	}
	n, _ := res.RowsAffected()
	return n, nil
}

type sqlRows interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
	Close() error
}

func scanAlerts(rows sqlRows) ([]alert.Item, error) {
	defer func() { _ = rows.Close() }()
	var out []alert.Item
	for rows.Next() {
		var (
			it                    alert.Item
			event, state          string
			created, next, doneAt int64
		)
		if err := rows.Scan(&it.ID, &it.Channel, &event, &created, &next, &it.Attempts, &it.LastError, &state, &doneAt); err != nil {
			return nil, err
		}
		dec := json.NewDecoder(strings.NewReader(event))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&it.Event); err != nil {
			return nil, fmt.Errorf("%w: alert %d: %v", ErrInvalidRecord, it.ID, err)
		}
		it.State = alert.ItemState(state)
		if it.State != alert.Pending && it.State != alert.Delivered && it.State != alert.Dead {
			return nil, fmt.Errorf("%w: alert %d: state %q", ErrInvalidRecord, it.ID, state)
		}
		it.Created, it.NextAttempt, it.Done = fromNanos(created), fromNanos(next), fromNanos(doneAt)
		out = append(out, it)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return out, nil
}
