package serverdb

import (
	"database/sql/driver"
	"errors"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
)

func TestUnavailable(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"not found", ErrNotFound, false},
		{"a refused statement", &pgconn.PgError{Code: "23505"}, false},
		{"a syntax error", fmt.Errorf("insert: %w", &pgconn.PgError{Code: "42601"}), false},
		{"plain error", errors.New("boom"), false},
		{"bad conn", fmt.Errorf("query: %w", driver.ErrBadConn), true},
		{"ErrUnavailable", fmt.Errorf("x: %w", ErrUnavailable), true},
		{"connection exception", &pgconn.PgError{Code: "08006"}, true},
		{"admin shutdown", fmt.Errorf("q: %w", &pgconn.PgError{Code: "57P01"}), true},
		{"starting up", &pgconn.PgError{Code: "57P03"}, true},
		{"connect error", fmt.Errorf("open: %w", &pgconn.ConnectError{}), true},
	} {
		if got := Unavailable(tc.err); got != tc.want {
			t.Errorf("%s: Unavailable(%v) = %v, want %v", tc.name, tc.err, got, tc.want)
		}
	}
}
