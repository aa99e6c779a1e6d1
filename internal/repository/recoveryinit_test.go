package repository

import (
	"context"
	"errors"
	"testing"

	"github.com/coffer-backup/coffer/internal/keyring"
	"github.com/coffer-backup/coffer/internal/storage/mem"
)

// A repository made with only a recovery key has exactly one slot, a
// recovery slot, and opens with that key and nothing else.
func TestInitWithRecoveryKeyOnly(t *testing.T) {
	ctx := context.Background()
	st := mem.New()
	rk, err := keyring.NewRecoveryKey()
	if err != nil {
		t.Fatal(err)
	}
	r, got, err := Init(ctx, st, InitOptions{RecoveryKey: &rk})
	if err != nil {
		t.Fatal(err)
	}
	if got != nil {
		t.Errorf("Init returned a second recovery key")
	}
	if r.CurrentSlot().Kind != keyring.SlotRecovery {
		t.Errorf("current slot is %s, want recovery", r.CurrentSlot().Kind)
	}
	slots, _, err := LoadSlots(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	if len(slots) != 1 || slots[0].Kind != keyring.SlotRecovery {
		t.Fatalf("slots %+v, want one recovery slot", slots)
	}
	if _, err := OpenWith(ctx, st, []byte(rk.String()), OpenOptions{}); err != nil {
		t.Fatalf("open with the recovery key: %v", err)
	}
	other, _ := keyring.NewRecoveryKey()
	if _, err := OpenWith(ctx, st, []byte(other.String()), OpenOptions{}); !errors.Is(err, keyring.ErrWrongPassword) {
		t.Fatalf("open with another key: %v, want ErrWrongPassword", err)
	}
	if _, _, err := Init(ctx, mem.New(), InitOptions{}); err == nil {
		t.Fatal("Init without a passphrase or recovery key succeeded")
	}
}
