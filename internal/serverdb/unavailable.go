package serverdb

import (
	"database/sql/driver"
	"errors"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
)

// ErrUnavailable is what a request that needed the database is told while
// the database cannot be reached: nothing was decided, and the same
// request may succeed later. It names no host, port or cause; those stay
// in the server's log.
var ErrUnavailable = errors.New("the server's state database cannot be reached; try again later")

// Unavailable reports whether err means the database could not be reached
// or went away (a refused or timed-out connection, a connection the pool
// found dead, a server shutting down, starting up or in recovery), as
// opposed to a statement that the database refused. Only PostgreSQL's
// errors are told apart: an SQLite file is part of the server's own
// state directory.
func Unavailable(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, ErrUnavailable) || errors.Is(err, driver.ErrBadConn) {
		return true
	}
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) {
		return true
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		// Class 08: connection exception; 57P01-57P03: admin or crash
		// shutdown, cannot connect now (starting up, in recovery).
		return strings.HasPrefix(pe.Code, "08") || pe.Code == "57P01" || pe.Code == "57P02" || pe.Code == "57P03"
	}
	return false
}
