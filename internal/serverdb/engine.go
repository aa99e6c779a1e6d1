package serverdb

import (
	"context"
	"database/sql"
	"strconv"
	"strings"
)

// engine is the SQL engine under a Store. Every query is written once, in
// SQLite's spelling with ? placeholders; conn and txn rewrite it for the
// engine, so the two engines run the same statements and return the same
// results.
type engine int

const (
	engineSQLite engine = iota
	enginePostgres
)

// writeLockKey is the PostgreSQL advisory lock every write transaction
// takes first (pg_advisory_xact_lock): the transactions of all servers and
// admin commands sharing a database run one at a time, as SQLite's BEGIN
// IMMEDIATE makes them, so each sees what the one before committed (a
// read-then-write such as StampSnapshot's next sequence number or
// PolicyGeneration's next generation cannot race) and events get their IDs
// in commit order (the audit log takes them by ID, EventsAfter, and must
// never skip one that commits late). The value is "coffer-w" in ASCII.
const writeLockKey int64 = 0x636f666665722d77

// conn is the database of a Store: a *sql.DB whose queries are rewritten
// for its engine.
type conn struct {
	db     *sql.DB
	engine engine
}

// q rewrites query for the engine: PostgreSQL numbers its placeholders.
func (c *conn) q(query string) string {
	if c.engine != enginePostgres {
		return query
	}
	return rebind(query)
}

// rebind turns each ? outside quotes into $1, $2, ...
func rebind(query string) string {
	var b strings.Builder
	b.Grow(len(query) + 16)
	n := 0
	quote := byte(0)
	for i := 0; i < len(query); i++ {
		ch := query[i]
		switch {
		case quote != 0:
			if ch == quote {
				quote = 0
			}
		case ch == '\'' || ch == '"':
			quote = ch
		case ch == '?':
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteByte(ch)
	}
	return b.String()
}

func (c *conn) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	return c.db.ExecContext(ctx, c.q(query), args...)
}

func (c *conn) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	return c.db.QueryContext(ctx, c.q(query), args...)
}

func (c *conn) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	return c.db.QueryRowContext(ctx, c.q(query), args...)
}

// BeginTx starts a write transaction: on SQLite BEGIN IMMEDIATE (the
// driver's _txlock), on PostgreSQL a transaction holding writeLockKey.
func (c *conn) BeginTx(ctx context.Context, opts *sql.TxOptions) (*txn, error) {
	tx, err := c.db.BeginTx(ctx, opts)
	if err != nil {
		return nil, err
	}
	if c.engine == enginePostgres {
		if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1)`, writeLockKey); err != nil {
			_ = tx.Rollback()
			return nil, err
		}
	}
	return &txn{tx: tx, c: c}, nil
}

func (c *conn) Close() error { return c.db.Close() }

// txn is a transaction of a conn.
type txn struct {
	tx *sql.Tx
	c  *conn
}

func (t *txn) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	return t.tx.ExecContext(ctx, t.c.q(query), args...)
}

func (t *txn) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	return t.tx.QueryContext(ctx, t.c.q(query), args...)
}

func (t *txn) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	return t.tx.QueryRowContext(ctx, t.c.q(query), args...)
}

func (t *txn) Commit() error   { return t.tx.Commit() }
func (t *txn) Rollback() error { return t.tx.Rollback() }
