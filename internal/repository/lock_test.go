package repository

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/coffer-backup/coffer/internal/keyring"
	"github.com/coffer-backup/coffer/internal/storage/mem"
)

func testRepo(t *testing.T) *Repository {
	t.Helper()
	r, _, err := Init(context.Background(), mem.New(), InitOptions{Passphrase: []byte("pw"),
		KDF: keyring.KDFParams{Time: 1, MemoryKiB: 8 * 1024, Threads: 1}})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestLockConflictsAndLoss(t *testing.T) {
	ctx := context.Background()
	r := testRepo(t)
	shared, err := r.Lock(ctx, "backup", false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Lock(ctx, "rotate", true); !errors.Is(err, ErrLocked) {
		t.Fatalf("exclusive lock beside a live shared one: %v", err)
	}
	other, err := r.Lock(ctx, "backup", false)
	if err != nil {
		t.Fatalf("two shared locks: %v", err)
	}
	if err := shared.Valid(ctx); err != nil {
		t.Fatalf("fresh lock invalid: %v", err)
	}
	// Someone (an unlock --remove-all, a prune that judged it stale) removes it.
	if err := r.RemoveLock(ctx, shared.Info().ID); err != nil {
		t.Fatal(err)
	}
	if err := shared.Valid(ctx); !errors.Is(err, ErrLockLost) {
		t.Fatalf("removed lock still valid: %v", err)
	}
	// A lock not refreshed for LockStaleAfter (a suspended machine) is lost.
	old := LockStaleAfter
	LockStaleAfter = 50 * time.Millisecond
	defer func() { LockStaleAfter = old }()
	time.Sleep(80 * time.Millisecond)
	if err := other.Valid(ctx); !errors.Is(err, ErrLockLost) {
		t.Fatalf("stale lock still valid: %v", err)
	}
	if err := other.Refresh(ctx); !errors.Is(err, ErrLockLost) {
		t.Fatalf("stale lock refreshed back to life: %v", err)
	}
	_ = other.Unlock(ctx)
	_ = shared.Unlock(ctx)
}
