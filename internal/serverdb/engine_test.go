package serverdb

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/coffer-backup/coffer/internal/serverdb/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// opener opens a Store on one database; each call is another connection
// pool on it (another process). Stores it opens close when the test ends.
type opener func() (*Store, error)

// fresh is an engine's way to make an empty database for t.
type fresh func(t *testing.T) opener

// engines runs f as a subtest for each engine: SQLite always, PostgreSQL
// as pgtest.Start allows.
func engines(t *testing.T, f func(t *testing.T, newDB fresh)) {
	t.Helper()
	t.Run("sqlite", func(t *testing.T) {
		t.Parallel()
		f(t, func(t *testing.T) opener {
			path := filepath.Join(t.TempDir(), DefaultFile)
			return closing(t, func() (*Store, error) { return Open(context.Background(), path) })
		})
	})
	t.Run("postgres", func(t *testing.T) {
		t.Parallel()
		srv := pgtest.Start(t)
		f(t, func(t *testing.T) opener {
			url := srv.URL(srv.NewDatabase(t))
			return closing(t, func() (*Store, error) { return OpenPostgres(context.Background(), url, srv.Password) })
		})
	})
}

func closing(t *testing.T, open opener) opener {
	return func() (*Store, error) {
		db, err := open()
		if err == nil {
			t.Cleanup(func() { _ = db.Close() })
		}
		return db, err
	}
}

// eachEngine runs f for each engine with a Store on a fresh database and
// the opener of that database.
func eachEngine(t *testing.T, f func(t *testing.T, db *Store, reopen func() (*Store, error))) {
	t.Helper()
	engines(t, func(t *testing.T, newDB fresh) {
		reopen := newDB(t)
		db, err := reopen()
		if err != nil {
			t.Fatal(err)
		}
		f(t, db, reopen)
	})
}

// mustOpen opens a Store on a fresh database of newDB.
func mustOpen(t *testing.T, newDB fresh) *Store {
	t.Helper()
	db, err := newDB(t)()
	if err != nil {
		t.Fatal(err)
	}
	return db
}
