package serverdb

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/coffer-backup/coffer/internal/serverdb/pgtest"
)

func TestPostgresSchemaTooNew(t *testing.T) {
	srv := pgtest.Start(t)
	ctx := context.Background()
	name := srv.NewDatabase(t)
	db, err := OpenPostgres(ctx, srv.URL(name), srv.Password)
	if err != nil {
		t.Fatal(err)
	}
	_ = db.Close()
	srv.Exec(t, name, "UPDATE coffer_schema SET version = 99")
	if _, err := OpenPostgres(ctx, srv.URL(name), srv.Password); !errors.Is(err, ErrSchemaTooNew) {
		t.Fatalf("open of a newer schema: %v, want ErrSchemaTooNew", err)
	}
}

// Two servers starting at once on an empty database migrate it once.
func TestPostgresConcurrentMigration(t *testing.T) {
	srv := pgtest.Start(t)
	url := srv.URL(srv.NewDatabase(t))
	errs := make(chan error, 4)
	for range 4 {
		go func() {
			db, err := OpenPostgres(context.Background(), url, srv.Password)
			if err == nil {
				err = db.Close()
			}
			errs <- err
		}()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

func TestPostgresWrongPassword(t *testing.T) {
	srv := pgtest.Start(t)
	url := srv.URL(srv.NewDatabase(t))
	_, err := OpenPostgres(context.Background(), url, "not-"+srv.Password)
	if err == nil || !strings.Contains(err.Error(), "password authentication failed") {
		t.Fatalf("wrong password: %v", err)
	}
	if strings.Contains(err.Error(), srv.Password) {
		t.Fatalf("the error shows a password: %v", err)
	}
}

// TestSchemasAgree holds the two engines' schemas to the same tables and
// columns, so a migration appended to one list only fails here.
func TestSchemasAgree(t *testing.T) {
	srv := pgtest.Start(t)
	ctx := context.Background()
	lite, err := Open(ctx, t.TempDir()+"/"+DefaultFile)
	if err != nil {
		t.Fatal(err)
	}
	defer lite.Close()
	pg, err := OpenPostgres(ctx, srv.URL(srv.NewDatabase(t)), srv.Password)
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Close()
	want := columns(t, lite, `SELECT m.name, p.name FROM sqlite_master m, pragma_table_info(m.name) p WHERE m.type = 'table'`)
	got := columns(t, pg, `SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = 'public' AND table_name != 'coffer_schema'`)
	if want != got {
		t.Fatalf("PostgreSQL's tables and columns differ from SQLite's:\nsqlite:   %s\npostgres: %s", want, got)
	}
}

func columns(t *testing.T, s *Store, query string) string {
	t.Helper()
	rows, err := s.db.QueryContext(context.Background(), query)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var table, col string
		if err := rows.Scan(&table, &col); err != nil {
			t.Fatal(err)
		}
		out = append(out, fmt.Sprintf("%s.%s", table, col))
	}
	sort.Strings(out)
	return strings.Join(out, " ")
}

func TestParsePostgresURL(t *testing.T) {
	good := []string{
		"postgres://coffer@db.example:5432/coffer",
		"postgresql://coffer@127.0.0.1/coffer?sslmode=verify-full&sslrootcert=/etc/ca.pem",
		"postgres://coffer@[::1]:5433/state",
	}
	for _, s := range good {
		if _, err := ParsePostgresURL(s); err != nil {
			t.Errorf("%s: %v", s, err)
		}
	}
	bad := map[string]string{
		"postgres://coffer:s3cret@db/coffer":          "password",
		"postgres://coffer:@db/coffer":                "password",
		"postgres://coffer@db/coffer?password=s3cret": "password",
		"postgres://coffer@db/coffer?PassWord=s3cret": "password",
		"postgres://db/coffer":                        "user",
		"postgres://coffer@/coffer":                   "host",
		"postgres://coffer@db":                        "database",
		"postgres://coffer@db/a/b":                    "database",
		"mysql://coffer@db/coffer":                    "scheme",
		"host=db user=coffer":                         "scheme",
		"postgres://coffer@db/coffer#frag":            "fragment",
		"postgres://coffer@db/coffer?x=%zz":           "query",
	}
	for s, want := range bad {
		_, err := ParsePostgresURL(s)
		if !errors.Is(err, ErrDatabaseURL) || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want an ErrDatabaseURL about %s", s, err, want)
		}
		if err != nil && strings.Contains(err.Error(), "s3cret") {
			t.Errorf("%s: the error shows the password: %v", s, err)
		}
	}
}

// FuzzParsePostgresURL: whatever it accepts has no password, names a user,
// a host and one database, and errors never echo a password.
func FuzzParsePostgresURL(f *testing.F) {
	for _, s := range []string{"postgres://u@h:1/d?sslmode=disable", "postgres://u:p@h/d", "postgresql://u@h/d?password=x", "postgres://%41@h/d"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		u, err := ParsePostgresURL(s)
		if err != nil {
			if !errors.Is(err, ErrDatabaseURL) {
				t.Fatalf("error not ErrDatabaseURL: %v", err)
			}
			return
		}
		if _, has := u.User.Password(); has || u.User.Username() == "" || u.Hostname() == "" {
			t.Fatalf("accepted %q: %+v", s, u)
		}
		for k := range u.Query() {
			if strings.Contains(strings.ToLower(k), "password") {
				t.Fatalf("accepted a password parameter in %q", s)
			}
		}
		if _, err := ParsePostgresURL(u.String()); err != nil {
			t.Fatalf("its own form %q refused: %v", u.String(), err)
		}
	})
}

// One server at a time holds the audit writer's place; it is free again
// when released or when its holder's connection ends.
func TestAuditWriterLock(t *testing.T) {
	srv := pgtest.Start(t)
	ctx := context.Background()
	url := srv.URL(srv.NewDatabase(t))
	a, err := OpenPostgres(ctx, url, srv.Password)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := OpenPostgres(ctx, url, srv.Password)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	wa, err := a.TryAuditWriter(ctx)
	if err != nil || wa == nil {
		t.Fatalf("first TryAuditWriter: %v %v", wa, err)
	}
	if w, err := b.TryAuditWriter(ctx); err != nil || w != nil {
		t.Fatalf("second server took the writer's place: %v %v", w, err)
	}
	if err := wa.Check(ctx); err != nil {
		t.Fatal(err)
	}
	if err := wa.Release(); err != nil {
		t.Fatal(err)
	}
	wb, err := b.TryAuditWriter(ctx)
	if err != nil || wb == nil {
		t.Fatalf("after release: %v %v", wb, err)
	}
	// The holder's connection ends (its server died): the place is free.
	key := auditWriterKey
	srv.Exec(t, "postgres", `SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND objid = $1::bigint::oid AND granted
		AND database = (SELECT oid FROM pg_database WHERE datname = $2)`,
		int64(uint32(key)), strings.TrimSuffix(strings.TrimPrefix(url[strings.LastIndex(url, "/")+1:], ""), "?sslmode=disable")) // #nosec G115 -- the key's low half, as pg_locks shows it
	if err := wb.Check(ctx); err == nil {
		t.Fatal("Check of a lock whose connection ended: nil")
	}
	// pg_terminate_backend only signals the backend: its lock goes when
	// it has exited, soon after.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		w, err := a.TryAuditWriter(ctx)
		if err == nil && w != nil {
			break
		}
		if err != nil || time.Now().After(deadline) {
			t.Fatalf("after the holder's connection ended: %v %v", w, err)
		}
	}
}

// A named lock is held by one server sharing the database at a time, per
// name, and free again once released; on SQLite it is always granted.
func TestTryLock(t *testing.T) {
	ctx := context.Background()
	a, b := twoServers(t)
	release, err := a.TryLock(ctx, "replicate:offsite")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.TryLock(ctx, "replicate:offsite"); !errors.Is(err, ErrLockHeld) {
		t.Fatalf("second server took a held lock: %v", err)
	}
	other, err := b.TryLock(ctx, "replicate:other")
	if err != nil {
		t.Fatalf("another name is another lock: %v", err)
	}
	other()
	release()
	again, err := b.TryLock(ctx, "replicate:offsite")
	if err != nil {
		t.Fatalf("after release: %v", err)
	}
	again()

	lite, err := Open(ctx, filepath.Join(t.TempDir(), DefaultFile))
	if err != nil {
		t.Fatal(err)
	}
	defer lite.Close()
	r1, err := lite.TryLock(ctx, "x")
	if err != nil {
		t.Fatal(err)
	}
	r2, err := lite.TryLock(ctx, "x")
	if err != nil {
		t.Fatalf("SQLite: %v", err)
	}
	r1()
	r2()
}

// twoServers opens one fresh PostgreSQL database twice, as two servers
// sharing it would.
func twoServers(t *testing.T) (*Store, *Store) {
	t.Helper()
	srv := pgtest.Start(t)
	url := srv.URL(srv.NewDatabase(t))
	var stores [2]*Store
	for i := range stores {
		s, err := OpenPostgres(context.Background(), url, srv.Password)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		stores[i] = s
	}
	return stores[0], stores[1]
}
