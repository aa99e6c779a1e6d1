package serverdb

import (
	"context"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

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

// Names a peer chose reach the events table as they are when they are
// text, and with each bad byte as U+FFFD when they are not, on both
// engines alike (PostgreSQL refuses NUL and invalid UTF-8 in TEXT).
func TestEventTextSameOnBothEngines(t *testing.T) {
	eachEngine(t, func(t *testing.T, db *Store, reopen func() (*Store, error)) {
		ctx := context.Background()
		for _, c := range []struct{ in, want string }{
			{"web1", "web1"},
			{"caf\u00e9 \U0001F600", "caf\u00e9 \U0001F600"},
			{"a\x00b", "a\uFFFDb"},
			{"bad\xff\xfe", "bad\uFFFD"},
		} {
			if err := db.LogEvent(ctx, Event{Time: t0, Client: c.in, Action: ActionEnrollRefused, Detail: c.in}); err != nil {
				t.Fatalf("%q: %v", c.in, err)
			}
			evs, err := db.Events(ctx, time.Time{}, 0)
			if err != nil {
				t.Fatal(err)
			}
			if e := evs[len(evs)-1]; e.Client != c.want || e.Detail != c.want {
				t.Fatalf("%q stored as %q, %q; want %q", c.in, e.Client, e.Detail, c.want)
			}
		}
	})
}

func TestRebind(t *testing.T) {
	for in, want := range map[string]string{
		"SELECT 1":        "SELECT 1",
		"a = ? AND b = ?": "a = $1 AND b = $2",
		"x = '?' AND y = ? AND z = \"q?\" AND w = ?": "x = '?' AND y = $1 AND z = \"q?\" AND w = $2",
		"'it''s ?' ?": "'it''s ?' $1",
	} {
		if got := rebind(in); got != want {
			t.Errorf("rebind(%q) = %q, want %q", in, got, want)
		}
	}
}

// FuzzRebind: rebind turns the k-th ? outside quotes into $k and leaves
// every other byte as it was.
func FuzzRebind(f *testing.F) {
	for _, s := range []string{"a = ? AND b = ?", "'?' ?", "\"?\"'", "?'", "$1 ?"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := rebind(s)
		j, n, quote := 0, 0, byte(0)
		for i := 0; i < len(s); i++ {
			ch := s[i]
			if quote == 0 && ch == '?' {
				n++
				want := "$" + strconv.Itoa(n)
				if !strings.HasPrefix(got[j:], want) {
					t.Fatalf("rebind(%q) = %q: placeholder %d is not %s", s, got, n, want)
				}
				j += len(want)
				continue
			}
			switch {
			case quote != 0 && ch == quote:
				quote = 0
			case quote == 0 && (ch == '\'' || ch == '"'):
				quote = ch
			}
			if j >= len(got) || got[j] != ch {
				t.Fatalf("rebind(%q) = %q: byte %d changed", s, got, i)
			}
			j++
		}
		if j != len(got) {
			t.Fatalf("rebind(%q) = %q: %d bytes added at the end", s, got, len(got)-j)
		}
	})
}
