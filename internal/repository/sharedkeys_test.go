package repository

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/coffer-backup/coffer/internal/chunker"
	"github.com/coffer-backup/coffer/internal/crypto"
	"github.com/coffer-backup/coffer/internal/keyring"
	"github.com/coffer-backup/coffer/internal/storage"
	"github.com/coffer-backup/coffer/internal/storage/mem"
)

func initShared(t *testing.T, st storage.Storage, shared *SharedKeys, p chunker.Params) *Repository {
	t.Helper()
	r, _, err := Init(context.Background(), st, InitOptions{Passphrase: []byte("pw"), Shared: shared, Chunker: p,
		KDF: keyring.KDFParams{Time: 1, MemoryKiB: 8 * 1024, Threads: 1}})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestSharedKeys(t *testing.T) {
	ctx := context.Background()
	small := chunker.Params{Min: 64 << 10, Avg: 256 << 10, Max: 2 << 20}
	a := initShared(t, mem.New(), nil, small)
	bst := mem.New()
	b := initShared(t, bst, a.ShareKeys(), a.Config().Chunker)
	other := initShared(t, mem.New(), nil, small)
	if !a.SharesBlobIDs(b) || !b.SharesBlobIDs(a) {
		t.Fatal("a repository made with a's keys does not share its blob IDs")
	}
	if a.SharesBlobIDs(other) {
		t.Fatal("two independent repositories share blob IDs")
	}
	// Reopened, b still uses a's keys; its public config hides them.
	b2, err := Open(ctx, bst.Reopen(), []byte("pw"))
	if err != nil {
		t.Fatal(err)
	}
	if !a.SharesBlobIDs(b2) || b2.ChunkerSecret() != a.ChunkerSecret() {
		t.Fatal("reopened, b no longer shares a's keys")
	}
	if from, ok := b2.SharedKeysFrom(); !ok || from != a.Config().ID {
		t.Errorf("SharedKeysFrom = %q, %v; want a's ID", from, ok)
	}
	if b2.Config().Version != 2 || b2.Config().Shared != nil {
		t.Errorf("Config() = version %d, shared %v; want 2 and the keys left out", b2.Config().Version, b2.Config().Shared)
	}
	if out, _ := json.Marshal(b2.Config()); strings.Contains(string(out), "shared_keys") {
		t.Errorf("the printed config carries the keys: %s", out)
	}
	if a.Hasher().Sum([]byte("x")) != b2.Hasher().Sum([]byte("x")) {
		t.Error("same data, different blob IDs")
	}
	// A different chunker with the same keys is not the same cutting.
	c := initShared(t, mem.New(), a.ShareKeys(), chunker.DefaultParams)
	if a.SharesBlobIDs(c) {
		t.Error("different chunker parameters reported as sharing blob IDs")
	}
}

func TestConfigVersionMatchesSharedKeys(t *testing.T) {
	key := make([]byte, crypto.KeySize)
	good := &SharedKeys{BlobID: key, Chunker: key, From: strings.Repeat("ab", 32)}
	base := Config{ID: strings.Repeat("cd", 32), Cipher: "aes-256-gcm", Chunker: chunker.DefaultParams, PackSize: DefaultPackSize, Compression: "auto"}
	cases := []struct {
		version int
		shared  *SharedKeys
		ok      bool
	}{
		{1, nil, true},
		{2, good, true},
		{1, good, false}, // an old reader would ignore the keys
		{2, nil, false},
		{2, &SharedKeys{BlobID: key[:31], Chunker: key}, false},
		{2, &SharedKeys{BlobID: key, Chunker: key, From: "not an id"}, false},
		{3, nil, false},
	}
	for i, tc := range cases {
		cfg := base
		cfg.Version, cfg.Shared = tc.version, tc.shared
		if err := cfg.validate(); (err == nil) != tc.ok {
			t.Errorf("case %d (version %d): validate = %v, want ok=%v", i, tc.version, err, tc.ok)
		}
	}
}
