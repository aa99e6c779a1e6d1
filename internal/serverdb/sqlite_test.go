package serverdb

import (
	"context"
	"crypto/sha256"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/coffer-backup/coffer/internal/pki"
	"github.com/coffer-backup/coffer/internal/pki/pkitest"
	"github.com/coffer-backup/coffer/internal/tlspolicy"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 123456789, time.UTC)

func openTemp(t *testing.T) (*SQLite, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), DefaultFile)
	db, err := Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db, path
}

func TestTokenStoreContract(t *testing.T) {
	engines(t, func(t *testing.T, newDB fresh) {
		pkitest.TokenStore(t, func(t *testing.T) pki.TokenStore { return mustOpen(t, newDB).Tokens() })
	})
}

// Fifty goroutines on two connections pools (as two processes would have)
// redeem one token: exactly one wins.
func TestRedeemRace(t *testing.T) {
	eachEngine(t, func(t *testing.T, db *Store, reopen func() (*Store, error)) {
		ctx := context.Background()
		a := db
		b, err := reopen()
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		for round := 0; round < 3; round++ {
			h := sha256.Sum256([]byte{byte(round)})
			if err := a.Tokens().Put(ctx, pki.TokenRecord{SecretHash: h, ClientName: "alice", CreatedAt: t0, ExpiresAt: t0.Add(time.Minute)}); err != nil {
				t.Fatal(err)
			}
			const n = 50
			var wg sync.WaitGroup
			errs := make([]error, n)
			start := make(chan struct{})
			for i := 0; i < n; i++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					store := a.Tokens()
					if i%2 == 1 {
						store = b.Tokens()
					}
					<-start
					_, errs[i] = store.Redeem(ctx, h, "alice", t0.Add(time.Second))
				}()
			}
			close(start)
			wg.Wait()
			wins := 0
			for i, err := range errs {
				switch {
				case err == nil:
					wins++
				case !errors.Is(err, pki.ErrTokenUsed):
					t.Errorf("round %d redeemer %d: %v", round, i, err)
				}
			}
			if wins != 1 {
				t.Fatalf("round %d: %d redeemers won, want exactly 1", round, wins)
			}
		}
	})
}

func TestFileModeAndReopen(t *testing.T) {
	ctx := context.Background()
	db, path := openTemp(t)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("database mode %v, want 0600", fi.Mode().Perm())
	}
	c := Client{Name: "alice", CertSerial: big.NewInt(0xabc), NotAfter: t0.Add(time.Hour), Created: t0}
	if err := db.PutClient(ctx, c); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	// Reopening migrates nothing and keeps the data.
	db2, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer db2.Close()
	got, err := db2.Client(ctx, "alice")
	if err != nil || got.CertSerial.Cmp(c.CertSerial) != 0 {
		t.Fatalf("after reopen: %+v, %v", got, err)
	}
	for _, suffix := range []string{"-wal", "-shm"} {
		if fi, err := os.Stat(path + suffix); err == nil && fi.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s has mode %v", suffix, fi.Mode().Perm())
		}
	}
}

func TestSchemaTooNew(t *testing.T) {
	ctx := context.Background()
	db, path := openTemp(t)
	if _, err := db.db.ExecContext(ctx, "PRAGMA user_version = 99"); err != nil {
		t.Fatal(err)
	}
	_ = db.Close()
	if _, err := Open(ctx, path); !errors.Is(err, ErrSchemaTooNew) {
		t.Fatalf("Open of a newer schema: %v, want ErrSchemaTooNew", err)
	}
}

func TestClients(t *testing.T) {
	eachEngine(t, func(t *testing.T, db *Store, reopen func() (*Store, error)) {
		ctx := context.Background()
		if _, err := db.Client(ctx, "nobody"); !errors.Is(err, ErrNotFound) {
			t.Errorf("unknown client: %v", err)
		}
		for _, bad := range []Client{
			{Name: "../x", CertSerial: big.NewInt(1), Created: t0, NotAfter: t0},
			{Name: "ok", CertSerial: nil, Created: t0, NotAfter: t0},
			{Name: "ok", CertSerial: big.NewInt(-1), Created: t0, NotAfter: t0},
			{Name: "ok", CertSerial: big.NewInt(1), NotAfter: t0},
			{Name: "ok", CertSerial: big.NewInt(1), Created: t0, NotAfter: t0, QuotaBytes: -1},
		} {
			if err := db.PutClient(ctx, bad); err == nil {
				t.Errorf("PutClient(%+v) accepted", bad)
			}
		}
		bob := Client{Name: "bob", CertSerial: big.NewInt(7), NotAfter: t0.Add(time.Hour), Created: t0}
		alice := Client{Name: "alice", CertSerial: big.NewInt(5), NotAfter: t0.Add(time.Hour), Created: t0}
		for _, c := range []Client{bob, alice} {
			if err := db.PutClient(ctx, c); err != nil {
				t.Fatal(err)
			}
		}
		if err := db.SetAllowDelete(ctx, "alice", true, t0); err != nil {
			t.Fatal(err)
		}
		if err := db.SetQuota(ctx, "alice", 1<<30, t0); err != nil {
			t.Fatal(err)
		}
		if err := db.SetQuota(ctx, "nobody", 1, t0); !errors.Is(err, ErrNotFound) {
			t.Errorf("SetQuota of unknown client: %v", err)
		}
		if err := db.SetCountLimits(ctx, "alice", 500, 3, t0); err != nil {
			t.Fatal(err)
		}
		if err := db.SetCountLimits(ctx, "alice", -1, 3, t0); !errors.Is(err, ErrInvalidRecord) {
			t.Errorf("negative object cap: %v", err)
		}
		if err := db.SetCountLimits(ctx, "nobody", 1, 1, t0); !errors.Is(err, ErrNotFound) {
			t.Errorf("SetCountLimits of unknown client: %v", err)
		}
		if err := db.SetAllowDelete(ctx, "nobody", true, t0); !errors.Is(err, ErrNotFound) {
			t.Errorf("SetAllowDelete of unknown client: %v", err)
		}
		if err := db.Touch(ctx, "alice", t0.Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
		if err := db.Touch(ctx, "alice", t0); err != nil { // older: ignored
			t.Fatal(err)
		}
		// Renewal: new serial and expiry; policy and creation time kept.
		renewed := Client{Name: "alice", CertSerial: big.NewInt(6), NotAfter: t0.Add(2 * time.Hour), Created: t0.Add(time.Hour)}
		if err := db.PutClient(ctx, renewed); err != nil {
			t.Fatal(err)
		}
		all, err := db.Clients(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(all) != 2 || all[0].Name != "alice" || all[1].Name != "bob" {
			t.Fatalf("Clients = %+v", all)
		}
		a := all[0]
		if a.CertSerial.Int64() != 6 || !a.NotAfter.Equal(t0.Add(2*time.Hour)) || !a.Created.Equal(t0) ||
			!a.AllowDelete || a.QuotaBytes != 1<<30 || !a.LastContact.Equal(t0.Add(time.Minute)) || a.Revoked() ||
			a.MaxObjects != 500 || a.MaxRepos != 3 {
			t.Errorf("alice = %+v", a)
		}
		if all[1].AllowDelete || all[1].QuotaBytes != 0 || !all[1].LastContact.IsZero() || all[1].MaxObjects != 0 || all[1].MaxRepos != 0 {
			t.Errorf("bob = %+v", all[1])
		}
		events, err := db.Events(ctx, time.Time{}, 0)
		if err != nil || len(events) != 3 || events[0].Action != ActionPolicy || events[0].Detail != "allow-delete=true" || events[2].Detail != "max-objects=500 max-repos=3" {
			t.Errorf("policy events = %+v, %v", events, err)
		}
	})
}

func TestRevocation(t *testing.T) {
	eachEngine(t, func(t *testing.T, db *Store, reopen func() (*Store, error)) {
		ctx := context.Background()
		if err := db.PutClient(ctx, Client{Name: "mallory", CertSerial: big.NewInt(0x1234), NotAfter: t0.Add(time.Hour), Created: t0}); err != nil {
			t.Fatal(err)
		}
		if err := db.RevokeClient(ctx, "nobody", t0, "x"); !errors.Is(err, ErrNotFound) {
			t.Errorf("RevokeClient(nobody) = %v", err)
		}
		if err := db.Revoke(ctx, Revocation{Serial: big.NewInt(0x99), Client: "mallory", RevokedAt: t0, Reason: "superseded"}); err != nil {
			t.Fatal(err)
		}
		if err := db.RevokeClient(ctx, "mallory", t0.Add(time.Second), "stolen laptop"); err != nil {
			t.Fatal(err)
		}
		if err := db.RevokeClient(ctx, "mallory", t0.Add(2*time.Second), "again"); err != nil {
			t.Fatalf("second revocation: %v", err)
		}
		m, err := db.Client(ctx, "mallory")
		if err != nil || !m.Revoked() {
			t.Fatalf("mallory = %+v, %v", m, err)
		}
		revs, err := db.Revocations(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(revs) != 2 || revs[0].Serial.Int64() != 0x99 || revs[1].Serial.Int64() != 0x1234 || revs[1].Reason != "stolen laptop" {
			t.Fatalf("revocations = %+v", revs)
		}
		// A new enrollment of the name clears the client-wide flag, not the serials.
		if err := db.PutClient(ctx, Client{Name: "mallory", CertSerial: big.NewInt(0x5678), NotAfter: t0.Add(time.Hour), Created: t0}); err != nil {
			t.Fatal(err)
		}
		if m, _ := db.Client(ctx, "mallory"); m.Revoked() {
			t.Error("re-enrolled client still revoked")
		}
		if revs, _ := db.Revocations(ctx); len(revs) != 2 {
			t.Errorf("re-enrollment changed the revocations: %+v", revs)
		}
		if err := db.Revoke(ctx, Revocation{Serial: big.NewInt(0), Client: "x"}); !errors.Is(err, ErrInvalidRecord) {
			t.Errorf("Revoke of serial 0: %v", err)
		}
	})
}

func TestEventsAndRefusals(t *testing.T) {
	eachEngine(t, func(t *testing.T, db *Store, reopen func() (*Store, error)) {
		ctx := context.Background()
		for i := 0; i < 5; i++ {
			e := Event{Time: t0.Add(time.Duration(i) * time.Second), Client: "alice", Repo: "main", Object: "data/ab", Action: ActionDelete}
			if err := db.LogEvent(ctx, e); err != nil {
				t.Fatal(err)
			}
		}
		if err := db.LogEvent(ctx, Event{Client: "x", Action: ActionDelete}); !errors.Is(err, ErrInvalidRecord) {
			t.Errorf("event without time: %v", err)
		}
		got, err := db.Events(ctx, t0.Add(2*time.Second), 2)
		if err != nil || len(got) != 2 || !got[0].Time.Equal(t0.Add(2*time.Second)) || got[1].Object != "data/ab" {
			t.Fatalf("Events = %+v, %v", got, err)
		}
		r := tlspolicy.RefusalRecord{Time: t0, Peer: "192.0.2.1:5555", Kind: tlspolicy.KindVersion, Reason: "tls 1.0 offered",
			OfferedVersions: []string{"TLS 1.0"}, OfferedSuites: []string{"TLS_RSA_WITH_3DES_EDE_CBC_SHA"}}
		if err := db.LogRefusal(ctx, r); err != nil {
			t.Fatal(err)
		}
		if err := db.RefusalLog().LogRefusal(tlspolicy.RefusalRecord{Time: t0.Add(time.Hour), Peer: "p", Kind: tlspolicy.KindNoCertificate}); err != nil {
			t.Fatal(err)
		}
		if err := db.LogRefusal(ctx, tlspolicy.RefusalRecord{Peer: "p"}); !errors.Is(err, ErrInvalidRecord) {
			t.Errorf("refusal without time: %v", err)
		}
		refs, err := db.Refusals(ctx, t0)
		if err != nil || len(refs) != 2 {
			t.Fatalf("Refusals = %+v, %v", refs, err)
		}
		if !refs[0].Time.Equal(r.Time) || refs[0].Peer != r.Peer || refs[0].Kind != r.Kind || len(refs[0].OfferedSuites) != 1 || refs[0].OfferedVersions[0] != "TLS 1.0" {
			t.Errorf("refusal = %+v", refs[0])
		}
		if refs[1].Kind != tlspolicy.KindNoCertificate {
			t.Errorf("second refusal = %+v", refs[1])
		}
		if refs, _ := db.Refusals(ctx, t0.Add(time.Minute)); len(refs) != 1 {
			t.Errorf("Refusals since: %d", len(refs))
		}
	})
}

func TestAuditHeadAndEventsAfter(t *testing.T) {
	t.Parallel()
	eachEngine(t, func(t *testing.T, db *Store, reopen func() (*Store, error)) {
		ctx := context.Background()
		if h, err := db.AuditHead(ctx); err != nil || h != (AuditHead{}) {
			t.Fatalf("AuditHead of a new database = %+v, %v; want zero", h, err)
		}
		want := AuditHead{Seq: 41, EventID: 7}
		want.Hash[0], want.Hash[31] = 0xab, 0xcd
		if err := db.SetAuditHead(ctx, want); err != nil {
			t.Fatal(err)
		}
		want.Seq++
		if err := db.SetAuditHead(ctx, want); err != nil {
			t.Fatal(err)
		}
		if err := db.SetAuditHead(ctx, AuditHead{Seq: 1 << 63}); !errors.Is(err, ErrInvalidRecord) {
			t.Fatalf("SetAuditHead of seq 2^63: %v, want ErrInvalidRecord", err)
		}
		// A second process sees what the first stored.
		db2, err := reopen()
		if err != nil {
			t.Fatal(err)
		}
		defer db2.Close()
		if h, err := db2.AuditHead(ctx); err != nil || h != want {
			t.Fatalf("AuditHead = %+v, %v; want %+v", h, err, want)
		}
		now := time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC)
		for i, action := range []string{ActionToken, ActionEnroll, ActionRevoke} {
			// Times out of order: EventsAfter follows the IDs.
			if err := db.LogEvent(ctx, Event{Time: now.Add(-time.Duration(i) * time.Hour), Client: "web1", Action: action}); err != nil {
				t.Fatal(err)
			}
		}
		evs, err := db2.EventsAfter(ctx, 1, 0)
		if err != nil || len(evs) != 2 || evs[0].ID != 2 || evs[0].Action != ActionEnroll || evs[1].ID != 3 {
			t.Fatalf("EventsAfter(1) = %+v, %v; want events 2 and 3", evs, err)
		}
		if evs, err := db2.EventsAfter(ctx, 0, 1); err != nil || len(evs) != 1 || evs[0].ID != 1 {
			t.Fatalf("EventsAfter(0, limit 1) = %+v, %v", evs, err)
		}
	})
}

// TouchAll records many last contacts in one go, never moving one back,
// and ignores names that are no client.
func TestTouchAll(t *testing.T) {
	t.Parallel()
	eachEngine(t, func(t *testing.T, db *Store, reopen func() (*Store, error)) {
		ctx := context.Background()
		for i, name := range []string{"alice", "bob"} {
			if err := db.PutClient(ctx, Client{Name: name, CertSerial: big.NewInt(int64(i + 1)), NotAfter: t0.Add(time.Hour), Created: t0}); err != nil {
				t.Fatal(err)
			}
		}
		if err := db.TouchAll(ctx, map[string]time.Time{"alice": t0.Add(2 * time.Minute), "bob": t0.Add(time.Minute)}); err != nil {
			t.Fatal(err)
		}
		if err := db.TouchAll(ctx, map[string]time.Time{"alice": t0.Add(time.Minute), "nobody": t0}); err != nil {
			t.Fatal(err)
		}
		if err := db.TouchAll(ctx, nil); err != nil {
			t.Fatal(err)
		}
		for name, want := range map[string]time.Time{"alice": t0.Add(2 * time.Minute), "bob": t0.Add(time.Minute)} {
			c, err := db.Client(ctx, name)
			if err != nil || !c.LastContact.Equal(want) {
				t.Fatalf("%s: last contact %v, %v; want %v", name, c.LastContact, err, want)
			}
		}
	})
}

// SwapAuditHead replaces only the head it is given: a second writer that
// extends the same head fails with ErrConflict.
func TestSwapAuditHead(t *testing.T) {
	eachEngine(t, func(t *testing.T, db *Store, reopen func() (*Store, error)) {
		ctx := context.Background()
		one := AuditHead{Seq: 1, EventID: 1}
		one.Hash[0] = 1
		if err := db.SwapAuditHead(ctx, AuditHead{}, one); err != nil {
			t.Fatal(err)
		}
		if err := db.SwapAuditHead(ctx, AuditHead{}, one); !errors.Is(err, ErrConflict) {
			t.Fatalf("swap from the zero head again: %v, want ErrConflict", err)
		}
		a, b := AuditHead{Seq: 2, EventID: 2}, AuditHead{Seq: 2, EventID: 3}
		a.Hash[0], b.Hash[0] = 2, 3
		if err := db.SwapAuditHead(ctx, one, a); err != nil {
			t.Fatal(err)
		}
		other, err := reopen()
		if err != nil {
			t.Fatal(err)
		}
		if err := other.SwapAuditHead(ctx, one, b); !errors.Is(err, ErrConflict) {
			t.Fatalf("a second writer extending the same head: %v, want ErrConflict", err)
		}
		if h, err := other.AuditHead(ctx); err != nil || h != a {
			t.Fatalf("kept head %+v, %v; want %+v", h, err, a)
		}
		if err := db.SwapAuditHead(ctx, a, AuditHead{Seq: 1 << 63}); !errors.Is(err, ErrInvalidRecord) {
			t.Fatalf("seq 2^63: %v", err)
		}
	})
}
