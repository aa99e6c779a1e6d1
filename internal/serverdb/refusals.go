package serverdb

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/coffer-backup/coffer/internal/tlspolicy"
)

// maxRefusalRecord bounds a stored refusal record (tlspolicy clips fields).
const maxRefusalRecord = 16 << 10

// Refusal rows are aggregated: one row per UTC day, source address (the
// peer without its port) and kind holds the first record of that key and
// counts its repeats, so a flood from one address adds no rows. A record
// whose SNI looks like a self-scan name keeps that name in its key, so the
// TLS report can tell the server's own scans from forged ones; at most
// maxScanRows such rows per day and source, the rest count as unnamed.
const upsertRefusal = `INSERT INTO tls_refusals (time, kind, record, day, source, scan, count, last) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
	ON CONFLICT(day, source, kind, scan) WHERE day != '' DO UPDATE SET count = tls_refusals.count + excluded.count,
		last = CASE WHEN excluded.last > tls_refusals.last THEN excluded.last ELSE tls_refusals.last END`

// selfScanSuffix ends the SNI of the server's self-scans
// (server.IsSelfScanSNI; this package is below the server).
const selfScanSuffix = ".self-scan.coffer.invalid"

// maxScanRows bounds the self-scan-named rows per day and source address: a
// few scans a day make about five rows each.
const maxScanRows = 64

// MaxRefusalRowsPerDay bounds the rows of one UTC day: beyond it, refusals
// of a new source address or kind are counted in the day's "suppressed"
// row. With records under tlspolicy.MaxRecordBytes, a day stays under about
// 8 MiB however many addresses a flood comes from.
const MaxRefusalRowsPerDay = 1000

// refusalKey is the aggregation key of a refusal.
type refusalKey struct{ day, source, kind, scan string }

func keyOf(r tlspolicy.RefusalRecord) refusalKey {
	source := r.Peer
	if host, _, err := net.SplitHostPort(r.Peer); err == nil {
		source = host
	}
	k := refusalKey{day: r.Time.UTC().Format(time.DateOnly), source: source, kind: r.Kind}
	if len(r.SNI) > len(selfScanSuffix) && strings.HasSuffix(r.SNI, selfScanSuffix) {
		k.scan = r.SNI
	}
	return k
}

// rowExecer is a *conn or *txn.
type rowExecer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// write upserts row, unnamed when its day and source have maxScanRows
// self-scan-named rows already, and into the day's suppressed row when its
// day has MaxRefusalRowsPerDay rows and it would add one.
func (row *refusalRow) write(ctx context.Context, x rowExecer, days dayRows) error {
	k := row.key
	record := row.record
	full, err := days.full(ctx, x, k)
	if err != nil {
		return err
	}
	if full {
		k = refusalKey{day: k.day, kind: tlspolicy.KindSuppressed}
		record, err = json.Marshal(tlspolicy.RefusalRecord{Time: row.first, Kind: tlspolicy.KindSuppressed,
			Reason: fmt.Sprintf("refusals over the limit of %d records a day", MaxRefusalRowsPerDay)})
		if err != nil {
			return err
		}
	}
	if k.scan != "" {
		var n int
		err := x.QueryRowContext(ctx, `SELECT count(*) FROM tls_refusals WHERE day = ? AND day != '' AND source = ? AND scan != '' AND NOT (kind = ? AND scan = ?)`, k.day, k.source, k.kind, k.scan).Scan(&n)
		if err != nil {
			return err
		}
		if n >= maxScanRows {
			k.scan = ""
		}
	}
	_, err = x.ExecContext(ctx, upsertRefusal, nanos(row.first), k.kind, string(record), k.day, k.source, k.scan, row.count, nanos(row.last))
	return err
}

// dayRows counts the rows of each day a write touches, read once per
// transaction (a count per row would make a flood quadratic).
type dayRows map[string]int

// full tells whether k would be a new row of a day that has
// MaxRefusalRowsPerDay rows already, and counts it if it is new.
func (d dayRows) full(ctx context.Context, x rowExecer, k refusalKey) (bool, error) {
	var exists int
	err := x.QueryRowContext(ctx, `SELECT count(*) FROM tls_refusals WHERE day = ? AND day != '' AND source = ? AND kind = ? AND scan = ?`, k.day, k.source, k.kind, k.scan).Scan(&exists)
	if err != nil || exists > 0 {
		return false, err
	}
	n, ok := d[k.day]
	if !ok {
		if err := x.QueryRowContext(ctx, `SELECT count(*) FROM tls_refusals WHERE day = ? AND day != ''`, k.day).Scan(&n); err != nil {
			return false, err
		}
	}
	if n >= MaxRefusalRowsPerDay {
		d[k.day] = n
		return true, nil
	}
	d[k.day] = n + 1
	return false, nil
}

// refusalRow is one aggregated row to write.
type refusalRow struct {
	key    refusalKey
	record []byte // the first record's JSON
	first  time.Time
	last   time.Time
	count  int64
}

func newRefusalRow(r tlspolicy.RefusalRecord) (*refusalRow, error) {
	if r.Time.IsZero() {
		return nil, fmt.Errorf("%w: time is required", ErrInvalidRecord)
	}
	b, err := json.Marshal(r)
	if err != nil {
		return nil, err
	}
	if len(b) > maxRefusalRecord {
		return nil, fmt.Errorf("%w: record of %d bytes", ErrInvalidRecord, len(b))
	}
	return &refusalRow{key: keyOf(r), record: b, first: r.Time, last: r.Time, count: int64(max(r.Count, 1))}, nil
}

// LogRefusal implements DB: the record is counted in its day, source and
// kind's row, written now.
func (s *Store) LogRefusal(ctx context.Context, r tlspolicy.RefusalRecord) error {
	row, err := newRefusalRow(r)
	if err != nil {
		return fmt.Errorf("log refusal: %w", err)
	}
	if err := row.write(ctx, s.db, dayRows{}); err != nil {
		return fmt.Errorf("log refusal: %w", err)
	}
	return nil
}

// Refusals implements DB. A row that aggregates repeats comes back as its
// first record with Count set to the number of refusals it stands for; a
// row is included when its last refusal is at or after since.
func (s *Store) Refusals(ctx context.Context, since time.Time) ([]tlspolicy.RefusalRecord, error) {
	s.refusals.flush(ctx)
	rows, err := s.db.QueryContext(ctx, `SELECT record, count FROM tls_refusals WHERE last >= ? ORDER BY time, id`, nanos(since))
	if err != nil {
		return nil, fmt.Errorf("read refusals: %w", err)
	}
	defer func() { _ = rows.Close() }()
	var out []tlspolicy.RefusalRecord
	for rows.Next() {
		var (
			text  string
			count int
		)
		if err := rows.Scan(&text, &count); err != nil {
			return nil, fmt.Errorf("read refusals: %w", err)
		}
		var r tlspolicy.RefusalRecord
		dec := json.NewDecoder(strings.NewReader(text))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&r); err != nil {
			return nil, fmt.Errorf("read refusals: %w: %v", ErrInvalidRecord, err)
		}
		if count > 1 {
			r.Count = count
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read refusals: %w", err)
	}
	return out, nil
}

// PruneBefore deletes the refusal rows whose last refusal and the events
// that are older than before, returning how many of each went. Events the
// audit log has not yet taken (above AuditHead's EventID) are kept.
func (s *Store) PruneBefore(ctx context.Context, before time.Time) (refusals, events int64, err error) {
	s.refusals.flush(ctx)
	res, err := s.db.ExecContext(ctx, `DELETE FROM tls_refusals WHERE last < ?`, nanos(before))
	if err != nil {
		return 0, 0, fmt.Errorf("prune refusals: %w", err)
	}
	refusals, _ = res.RowsAffected()
	// Events not yet appended to the audit log stay until they are.
	res, err = s.db.ExecContext(ctx, `DELETE FROM events WHERE time < ? AND id <= COALESCE((SELECT event_id FROM audit_head WHERE id = 1), 0)`, nanos(before))
	if err != nil {
		return refusals, 0, fmt.Errorf("prune events: %w", err)
	}
	events, _ = res.RowsAffected()
	return refusals, events, nil
}

// RefusalLog implements DB. Records are aggregated in memory and written
// once a second in one transaction, so a flood of refused handshakes
// neither waits on the database nor crowds out the requests that need it.
// At most maxBatchKeys distinct rows wait; the excess is counted in one
// "suppressed" row.
func (s *Store) RefusalLog() tlspolicy.RefusalLog { return s.refusals }

// maxBatchKeys bounds the rows a refusal batch holds between writes.
const maxBatchKeys = 1024

// refusalFlushEvery is how often a refusal batch is written.
const refusalFlushEvery = time.Second

// refusalBatch is the buffer behind RefusalLog.
type refusalBatch struct {
	s *Store

	mu      sync.Mutex
	rows    map[refusalKey]*refusalRow
	started bool
	done    chan struct{}
	stopped chan struct{}
	writeMu sync.Mutex // one flush at a time
}

func newRefusalBatch(s *Store) *refusalBatch {
	return &refusalBatch{s: s, rows: map[refusalKey]*refusalRow{}, done: make(chan struct{}), stopped: make(chan struct{})}
}

// LogRefusal adds r to the batch; the first call starts the writer.
func (b *refusalBatch) LogRefusal(r tlspolicy.RefusalRecord) error {
	row, err := newRefusalRow(r)
	if err != nil {
		return fmt.Errorf("log refusal: %w", err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.started {
		b.started = true
		go b.run()
	}
	if old := b.rows[row.key]; old != nil {
		old.count += row.count
		old.last = maxTime(old.last, row.last)
		return nil
	}
	if len(b.rows) >= maxBatchKeys {
		over := tlspolicy.RefusalRecord{Time: r.Time, Kind: tlspolicy.KindSuppressed, Reason: "refusals over the logging buffer"}
		if row, err = newRefusalRow(over); err != nil {
			return err
		}
		row.count = int64(max(r.Count, 1))
		if old := b.rows[row.key]; old != nil {
			old.count += row.count
			old.last = maxTime(old.last, row.last)
			return nil
		}
	}
	b.rows[row.key] = row
	return nil
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

func (b *refusalBatch) run() {
	defer close(b.stopped)
	t := time.NewTicker(refusalFlushEvery)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			b.flush(context.Background())
		case <-b.done:
			b.flush(context.Background())
			return
		}
	}
}

// flush writes the batch in one transaction. Rows that cannot be written
// are dropped: the log must stay bounded even when the disk is not.
func (b *refusalBatch) flush(ctx context.Context) {
	b.writeMu.Lock()
	defer b.writeMu.Unlock()
	b.mu.Lock()
	rows := b.rows
	if len(rows) == 0 {
		b.mu.Unlock()
		return
	}
	b.rows = map[refusalKey]*refusalRow{}
	b.mu.Unlock()
	// Generous: a full batch of maximal rows takes seconds on a loaded
	// machine, and LogRefusal never waits for a flush.
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	tx, err := b.s.db.BeginTx(ctx, nil)
	if err != nil {
		return
	}
	days := dayRows{}
	for _, row := range rows {
		if err := row.write(ctx, tx, days); err != nil {
			_ = tx.Rollback()
			return
		}
	}
	_ = tx.Commit()
}

// stop writes what is left and ends the writer.
func (b *refusalBatch) stop() {
	b.mu.Lock()
	started := b.started
	b.started = true // no writer starts after this
	b.mu.Unlock()
	select {
	case <-b.done:
		return
	default:
	}
	close(b.done)
	if started {
		<-b.stopped
	} else {
		b.flush(context.Background())
	}
}
