package formattest

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"testing"

	"filippo.io/age"

	"github.com/coffer-backup/coffer/internal/crypto"
	"github.com/coffer-backup/coffer/internal/keyring"
	"github.com/coffer-backup/coffer/internal/repository"
	"github.com/coffer-backup/coffer/internal/restorer"
	"github.com/coffer-backup/coffer/internal/storage/local"
)

// The frozen escrow slot (testdata/escrow-v1) was written once, by
//
//	COFFER_REGEN_FIXTURE=1 go test ./internal/formattest/ -run TestGenerateEscrowFixture
//
// for the frozen repository: escrow-v1/escrow.key is a fresh escrow
// identity (a test secret, nothing else uses it) and escrow-v1/keys/<id>
// the escrow slot coffer wrote for it into a copy of repo-v1. Every later
// build must open repo-v1 with that slot and key.
const (
	escrowFixtureDir = "testdata/escrow-v1"
	escrowFixtureKey = escrowFixtureDir + "/escrow.key"
)

func TestGenerateEscrowFixture(t *testing.T) {
	if os.Getenv("COFFER_REGEN_FIXTURE") != "1" {
		t.Skip("set COFFER_REGEN_FIXTURE=1 to write a new frozen escrow slot")
	}
	if _, err := os.Stat(escrowFixtureDir); err == nil {
		t.Fatalf("%s exists: the frozen escrow slot is never overwritten", escrowFixtureDir)
	}
	id, err := keyring.GenerateEscrowIdentity()
	if err != nil {
		t.Fatal(err)
	}
	r := openFixture(t, []byte(fixturePassphrase))
	s, err := r.AddEscrowSlot(context.Background(), id.Recipient())
	if err != nil {
		t.Fatal(err)
	}
	data, err := s.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(escrowFixtureDir, "keys"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(escrowFixtureKey, id.MarshalFile(s.Created), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(escrowFixtureDir, "keys", s.ID), data, 0o644); err != nil { // #nosec G306 -- test data
		t.Fatal(err)
	}
}

// frozenEscrowSlot returns the frozen slot's name and bytes.
func frozenEscrowSlot(t *testing.T) (string, []byte) {
	t.Helper()
	names, err := os.ReadDir(filepath.Join(escrowFixtureDir, "keys"))
	if err != nil || len(names) != 1 {
		t.Fatalf("frozen escrow slot: %v (%d files)", err, len(names))
	}
	data, err := os.ReadFile(filepath.Join(escrowFixtureDir, "keys", names[0].Name()))
	if err != nil {
		t.Fatal(err)
	}
	return names[0].Name(), data
}

func frozenEscrowKey(t *testing.T) []byte {
	t.Helper()
	b, err := os.ReadFile(escrowFixtureKey)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The frozen escrow slot, placed into a copy of the frozen repository,
// opens it with the frozen escrow key alone, and its data restores.
func TestFrozenEscrowSlotOpensRepository(t *testing.T) {
	t.Parallel()
	name, slot := frozenEscrowSlot(t)
	id, err := keyring.ParseEscrowIdentity(frozenEscrowKey(t))
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "repo")
	if err := copyTree(fixtureDir, dir); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "keys", name), slot, 0o600); err != nil {
		t.Fatal(err)
	}
	st, err := local.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	r, err := repository.OpenWith(ctx, st, nil, repository.OpenOptions{Escrow: id,
		BeforeKDF: func(int) { t.Error("an escrow unlock ran Argon2id") }})
	if err != nil {
		t.Fatalf("open the frozen repository with the frozen escrow slot: %v", err)
	}
	if cur := r.CurrentSlot(); cur.ID != name || cur.Kind != keyring.SlotEscrow {
		t.Fatalf("opened with slot %s (%s)", cur.ID, cur.Kind)
	}
	if err := r.LoadIndex(ctx); err != nil {
		t.Fatal(err)
	}
	_, stdin := fixtureSnapshots(t, r)
	target := t.TempDir()
	if err := restorer.New(r, restorer.Options{Target: target, Verify: true}).Restore(ctx, stdin.Tree); err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(filepath.Join(target, stdinName)); err != nil || !bytes.Equal(got, stdinStream()) {
		t.Fatalf("stdin snapshot through the escrow slot: %v", err)
	}
}

// The frozen slot follows docs/security.md §12 as written: its age
// plaintext, opened with age alone, is the binding built here from the
// document (not from coffer's code) followed by a master secret whose KEK
// opens the frozen repository's config.
func TestFrozenEscrowSlotMatchesSpec(t *testing.T) {
	t.Parallel()
	name, slot := frozenEscrowSlot(t)
	var j struct {
		Version   int    `json:"version"`
		Kind      string `json:"kind"`
		Created   string `json:"created"`
		Host      string `json:"host"`
		User      string `json:"user"`
		RepoID    string `json:"repo_id"`
		Cipher    string `json:"cipher"`
		Recipient string `json:"recipient"`
		Wrapped   string `json:"wrapped"`
	}
	d := json.NewDecoder(bytes.NewReader(slot))
	d.DisallowUnknownFields()
	if err := d.Decode(&j); err != nil {
		t.Fatal(err)
	}
	if j.Version != 1 || j.Kind != "escrow" || j.Cipher != "chacha20-poly1305" {
		t.Fatalf("slot header fields: %+v", j)
	}
	repoID, err := hex.DecodeString(j.RepoID)
	if err != nil {
		t.Fatal(err)
	}
	binding := []byte("coffer/v1/keyslot\x00")
	for _, f := range [][]byte{repoID, []byte(name), []byte(j.Kind), []byte(j.Created), []byte(j.Host), []byte(j.User), []byte(j.Cipher), []byte(j.Recipient)} {
		binding = binary.BigEndian.AppendUint16(binding, uint16(len(f))) // #nosec G115 -- test fields are short
		binding = append(binding, f...)
	}
	wrapped, err := base64.StdEncoding.DecodeString(j.Wrapped)
	if err != nil {
		t.Fatal(err)
	}
	ids, err := age.ParseIdentities(bytes.NewReader(frozenEscrowKey(t)))
	if err != nil || len(ids) != 1 {
		t.Fatalf("frozen escrow key: %v", err)
	}
	if rcpt := ids[0].(*age.X25519Identity).Recipient().String(); rcpt != j.Recipient {
		t.Fatalf("slot sealed to %s, key is %s", j.Recipient, rcpt)
	}
	pr, err := age.Decrypt(bytes.NewReader(wrapped), ids...)
	if err != nil {
		t.Fatal(err)
	}
	pt, err := io.ReadAll(pr)
	if err != nil {
		t.Fatal(err)
	}
	if len(pt) != len(binding)+64 || !bytes.Equal(pt[:len(binding)], binding) {
		t.Fatalf("sealed plaintext does not start with the documented binding:\n got %x\nwant %x", pt[:min(len(pt), len(binding))], binding)
	}
	kek := specHKDF(pt[len(binding):], repoID, "coffer/v1/kek")
	var k crypto.Key
	copy(k[:], kek)
	cfg, err := os.ReadFile(filepath.Join(fixtureDir, "config"))
	if err != nil {
		t.Fatal(err)
	}
	lookup := func(term uint32) (crypto.Key, error) { return k, nil }
	if _, err := crypto.OpenObject(crypto.KindConfig, lookup, repoID, "config", cfg); err != nil {
		t.Fatalf("the sealed master secret does not open the frozen config: %v", err)
	}
}
