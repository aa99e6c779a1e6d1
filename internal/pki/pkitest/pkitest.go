// Package pkitest is the contract test suite every pki.TokenStore must pass:
// the in-memory store runs it, and so does the server's database store.
package pkitest

import (
	"context"
	"crypto/sha256"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/coffer-backup/coffer/internal/pki"
)

// TokenStore runs the TokenStore contract against fresh stores from newStore.
func TokenStore(t *testing.T, newStore func(t *testing.T) pki.TokenStore) {
	ctx := context.Background()
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	rec := func(s string, ttl time.Duration) pki.TokenRecord {
		return pki.TokenRecord{SecretHash: sha256.Sum256([]byte(s)), ClientName: "client-" + s, CreatedAt: now, ExpiresAt: now.Add(ttl)}
	}

	t.Run("RedeemOnce", func(t *testing.T) {
		s := newStore(t)
		r := rec("a", time.Minute)
		if err := s.Put(ctx, r); err != nil {
			t.Fatal(err)
		}
		got, err := s.Redeem(ctx, r.SecretHash, r.ClientName, now.Add(30*time.Second))
		if err != nil {
			t.Fatalf("first redeem: %v", err)
		}
		if got.ClientName != r.ClientName || !got.ExpiresAt.Equal(r.ExpiresAt) || got.UsedAt.IsZero() {
			t.Fatalf("redeemed record %+v, want client %q, used", got, r.ClientName)
		}
		if _, err := s.Redeem(ctx, r.SecretHash, r.ClientName, now.Add(31*time.Second)); !errors.Is(err, pki.ErrTokenUsed) {
			t.Fatalf("second redeem: %v, want ErrTokenUsed", err)
		}
		if _, err := s.Redeem(ctx, r.SecretHash, r.ClientName, now.Add(time.Hour)); !errors.Is(err, pki.ErrTokenUsed) {
			t.Fatalf("redeem of used, now expired token: %v, want ErrTokenUsed", err)
		}
	})

	t.Run("Expired", func(t *testing.T) {
		s := newStore(t)
		r := rec("b", time.Minute)
		if err := s.Put(ctx, r); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Redeem(ctx, r.SecretHash, r.ClientName, now.Add(time.Minute)); !errors.Is(err, pki.ErrTokenExpired) {
			t.Fatalf("redeem at expiry: %v, want ErrTokenExpired", err)
		}
		// An expired token stays expired; it is not reported as used.
		if _, err := s.Redeem(ctx, r.SecretHash, r.ClientName, now.Add(2*time.Minute)); !errors.Is(err, pki.ErrTokenExpired) {
			t.Fatalf("redeem after expiry: %v, want ErrTokenExpired", err)
		}
	})

	t.Run("Unknown", func(t *testing.T) {
		s := newStore(t)
		if err := s.Put(ctx, rec("c", time.Minute)); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Redeem(ctx, sha256.Sum256([]byte("d")), "client-d", now); !errors.Is(err, pki.ErrTokenUnknown) {
			t.Fatalf("redeem unknown: %v, want ErrTokenUnknown", err)
		}
	})

	t.Run("EditedName", func(t *testing.T) { editedName(t, newStore(t), rec("g", time.Minute), now) })

	t.Run("DuplicatePut", func(t *testing.T) {
		s := newStore(t)
		if err := s.Put(ctx, rec("e", time.Minute)); err != nil {
			t.Fatal(err)
		}
		if err := s.Put(ctx, rec("e", time.Hour)); !errors.Is(err, pki.ErrTokenExists) {
			t.Fatalf("second Put of the same hash: %v, want ErrTokenExists", err)
		}
	})

	t.Run("RaceSingleUse", func(t *testing.T) {
		s := newStore(t)
		r := rec("f", time.Minute)
		if err := s.Put(ctx, r); err != nil {
			t.Fatal(err)
		}
		const n = 100
		var wg sync.WaitGroup
		var mu sync.Mutex
		ok, used := 0, 0
		start := make(chan struct{})
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				_, err := s.Redeem(ctx, r.SecretHash, r.ClientName, now)
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					ok++
				case errors.Is(err, pki.ErrTokenUsed):
					used++
				default:
					t.Errorf("concurrent redeem: %v", err)
				}
			}()
		}
		close(start)
		wg.Wait()
		if ok != 1 || used != n-1 {
			t.Fatalf("%d goroutines redeeming one token: %d successes, %d ErrTokenUsed; want 1 and %d", n, ok, used, n-1)
		}
	})
}

// editedName: a token whose client name was edited is unknown and changes
// nothing; the genuine token is still redeemable afterwards.
func editedName(t *testing.T, s pki.TokenStore, r pki.TokenRecord, now time.Time) {
	ctx := context.Background()
	if err := s.Put(ctx, r); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"admin", "client-", "CLIENT-g", ""} {
		if _, err := s.Redeem(ctx, r.SecretHash, name, now); !errors.Is(err, pki.ErrTokenUnknown) {
			t.Fatalf("redeem as %q: %v, want ErrTokenUnknown", name, err)
		}
	}
	got, err := s.Redeem(ctx, r.SecretHash, r.ClientName, now)
	if err != nil || got.ClientName != r.ClientName {
		t.Fatalf("genuine redeem after edited ones: %+v %v", got, err)
	}
	if _, err := s.Redeem(ctx, r.SecretHash, "admin", now); !errors.Is(err, pki.ErrTokenUnknown) {
		t.Fatalf("edited name after redemption: %v, want ErrTokenUnknown", err)
	}
}
