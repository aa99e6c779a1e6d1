package client

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/coffer-backup/coffer/internal/keyring"
	"github.com/coffer-backup/coffer/internal/repository"
)

func escrowCredential(id *keyring.EscrowIdentity) Credential {
	return Credential{Source: "--escrow-key the-test", Escrow: func(context.Context) (*keyring.EscrowIdentity, error) { return id, nil },
		Secret: func(context.Context) ([]byte, error) { return nil, errors.New("the secret was asked for") }}
}

// An escrow slot added to an open repository opens it with the escrow
// identity alone; a wrong identity is a wrong password naming its source;
// key passwd is refused with an escrow key.
func TestEscrowCredential(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	o := testOptions(t)
	id, err := keyring.GenerateEscrowIdentity()
	if err != nil {
		t.Fatal(err)
	}
	c := openTest(t, o)
	s, err := c.Repository().AddEscrowSlot(ctx, id.Recipient())
	if err != nil {
		t.Fatal(err)
	}
	var kdfRuns int
	eo := o
	eo.Credential = escrowCredential(id)
	eo.BeforeKDF = func(int) { kdfRuns++ }
	ec, err := Open(ctx, eo)
	if err != nil {
		t.Fatal(err)
	}
	defer ec.Close()
	if cur := ec.Repository().CurrentSlot(); cur.ID != s.ID || cur.Kind != keyring.SlotEscrow || kdfRuns != 0 {
		t.Fatalf("opened with %s (%s), %d Argon2id runs", cur.ID, cur.Kind, kdfRuns)
	}
	if _, err := ec.Repository().ChangePassphrase(ctx, []byte("new"), keyring.KDFParams{Time: 1, MemoryKiB: 8 << 10, Threads: 1}); !errors.Is(err, repository.ErrEscrowNotPassphrase) {
		t.Fatalf("key passwd with an escrow key: %v", err)
	}

	other, err := keyring.GenerateEscrowIdentity()
	if err != nil {
		t.Fatal(err)
	}
	eo.Credential = escrowCredential(other)
	_, err = Open(ctx, eo)
	if !errors.Is(err, keyring.ErrWrongPassword) || !strings.Contains(err.Error(), "escrow") || !strings.Contains(err.Error(), "(read from --escrow-key the-test)") {
		t.Fatalf("wrong escrow key: %v", err)
	}
}
