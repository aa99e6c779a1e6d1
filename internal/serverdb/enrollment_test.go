package serverdb

import (
	"context"
	"errors"
	"math/big"
	"testing"
	"time"
)

func serialSet(t *testing.T, db *SQLite) map[string]string {
	t.Helper()
	revs, err := db.Revocations(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for _, r := range revs {
		m[r.Serial.Text(16)] = r.Reason
	}
	return m
}

func TestEnrollClientSupersedes(t *testing.T) {
	eachEngine(t, func(t *testing.T, db *Store, reopen func() (*Store, error)) {
		ctx := context.Background()
		c := Client{Name: "alice", CertSerial: big.NewInt(0x10), NotAfter: t0.Add(time.Hour), Created: t0}
		if err := db.EnrollClient(ctx, c, t0); err != nil {
			t.Fatal(err)
		}
		if len(serialSet(t, db)) != 0 {
			t.Fatal("a first enrollment revoked something")
		}
		if err := db.SetAllowDelete(ctx, "alice", true, t0); err != nil {
			t.Fatal(err)
		}
		if err := db.RevokeClient(ctx, "alice", t0, "lost laptop"); err != nil {
			t.Fatal(err)
		}
		// Enrolling again (a new token) clears the client-wide revocation, keeps
		// the policy, and the old serial stays revoked.
		c.CertSerial = big.NewInt(0x20)
		if err := db.EnrollClient(ctx, c, t0.Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
		got, err := db.Client(ctx, "alice")
		if err != nil {
			t.Fatal(err)
		}
		if got.Revoked() || got.CertSerial.Cmp(big.NewInt(0x20)) != 0 || !got.AllowDelete {
			t.Fatalf("after re-enrollment: %+v", got)
		}
		if revs := serialSet(t, db); revs["10"] != "lost laptop" {
			t.Fatalf("revocations %v", revs)
		}
		// Enrolling a third time supersedes the second certificate.
		c.CertSerial = big.NewInt(0x30)
		if err := db.EnrollClient(ctx, c, t0.Add(2*time.Minute)); err != nil {
			t.Fatal(err)
		}
		if revs := serialSet(t, db); revs["20"] != ReasonSuperseded || len(revs) != 2 {
			t.Fatalf("revocations %v", revs)
		}
		evs, err := db.Events(ctx, time.Time{}, 0)
		if err != nil {
			t.Fatal(err)
		}
		enrolls := 0
		for _, e := range evs {
			if e.Action == ActionEnroll {
				enrolls++
			}
		}
		if enrolls != 3 {
			t.Fatalf("%d enroll events, want 3: %+v", enrolls, evs)
		}
		if err := db.EnrollClient(ctx, Client{Name: "../x", CertSerial: big.NewInt(1), NotAfter: t0, Created: t0}, t0); !errors.Is(err, ErrInvalidRecord) {
			t.Fatalf("invalid name: %v", err)
		}
	})
}

func TestRenewClient(t *testing.T) {
	eachEngine(t, func(t *testing.T, db *Store, reopen func() (*Store, error)) {
		ctx := context.Background()
		c := Client{Name: "bob", CertSerial: big.NewInt(0xa), NotAfter: t0.Add(time.Hour), Created: t0}
		if err := db.EnrollClient(ctx, c, t0); err != nil {
			t.Fatal(err)
		}
		if err := db.RenewClient(ctx, "nobody", big.NewInt(0xa), big.NewInt(0xb), t0.Add(2*time.Hour), t0); !errors.Is(err, ErrNotFound) {
			t.Fatalf("unknown client: %v", err)
		}
		if err := db.RenewClient(ctx, "bob", big.NewInt(0x9), big.NewInt(0xb), t0.Add(2*time.Hour), t0); !errors.Is(err, ErrSuperseded) {
			t.Fatalf("renewal with an old serial: %v", err)
		}
		if err := db.RenewClient(ctx, "bob", big.NewInt(0xa), big.NewInt(0xb), t0.Add(2*time.Hour), t0.Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
		got, err := db.Client(ctx, "bob")
		if err != nil {
			t.Fatal(err)
		}
		if got.CertSerial.Cmp(big.NewInt(0xb)) != 0 || !got.NotAfter.Equal(t0.Add(2*time.Hour)) {
			t.Fatalf("after renewal: %+v", got)
		}
		if revs := serialSet(t, db); revs["a"] != ReasonSuperseded {
			t.Fatalf("old serial not superseded: %v", revs)
		}
		// The superseded certificate cannot renew again.
		if err := db.RenewClient(ctx, "bob", big.NewInt(0xa), big.NewInt(0xc), t0.Add(3*time.Hour), t0); !errors.Is(err, ErrSuperseded) {
			t.Fatalf("second renewal with the old serial: %v", err)
		}
		if err := db.RevokeClient(ctx, "bob", t0, "test"); err != nil {
			t.Fatal(err)
		}
		if err := db.RenewClient(ctx, "bob", big.NewInt(0xb), big.NewInt(0xc), t0.Add(3*time.Hour), t0); !errors.Is(err, ErrRevoked) {
			t.Fatalf("revoked client renewed: %v", err)
		}
		if got, _ := db.Client(ctx, "bob"); got.CertSerial.Cmp(big.NewInt(0xb)) != 0 {
			t.Fatalf("refused renewal changed the record: %+v", got)
		}
	})
}

func TestRenewUser(t *testing.T) {
	eachEngine(t, func(t *testing.T, db *Store, reopen func() (*Store, error)) {
		ctx := context.Background()
		if err := db.AddUser(ctx, User{Name: "alice", Role: "auditor", Created: t0}, t0); err != nil {
			t.Fatal(err)
		}
		if err := db.EnrollUser(ctx, "alice", big.NewInt(0xa), t0.Add(time.Hour), t0); err != nil {
			t.Fatal(err)
		}
		if err := db.RenewUser(ctx, "nobody", big.NewInt(0xa), big.NewInt(0xb), t0.Add(2*time.Hour), t0); !errors.Is(err, ErrNotFound) {
			t.Fatalf("unknown user: %v", err)
		}
		if err := db.RenewUser(ctx, "alice", big.NewInt(0x9), big.NewInt(0xb), t0.Add(2*time.Hour), t0); !errors.Is(err, ErrSuperseded) {
			t.Fatalf("renewal with an old serial: %v", err)
		}
		if err := db.RenewUser(ctx, "alice", big.NewInt(0xa), big.NewInt(0xb), t0.Add(2*time.Hour), t0.Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
		u, err := db.User(ctx, "alice")
		if err != nil || u.CertSerial.Cmp(big.NewInt(0xb)) != 0 || !u.NotAfter.Equal(t0.Add(2*time.Hour)) {
			t.Fatalf("after renewal: %+v %v", u, err)
		}
		if revs := serialSet(t, db); revs["a"] != ReasonSuperseded {
			t.Fatalf("old serial not superseded: %v", revs)
		}
		evs, err := db.Events(ctx, time.Time{}, 0)
		if err != nil {
			t.Fatal(err)
		}
		if last := evs[len(evs)-1]; last.Action != ActionRenew || last.Client != "user:alice" {
			t.Fatalf("last event %+v", last)
		}
	})
}
