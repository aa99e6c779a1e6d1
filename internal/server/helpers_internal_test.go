package server

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/coffer-backup/coffer/internal/serverdb"
)

// openStateDB opens a state database (SQLite) in dir, closed when t ends.
func openStateDB(t *testing.T, dir string) *serverdb.SQLite {
	t.Helper()
	db, err := serverdb.Open(context.Background(), filepath.Join(dir, serverdb.DefaultFile))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}
