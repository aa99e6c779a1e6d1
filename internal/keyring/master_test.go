package keyring

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"io"
	"testing"

	"github.com/coffer-backup/coffer/internal/crypto"
	"golang.org/x/crypto/hkdf"
)

func testRepoID(b byte) []byte { return bytes.Repeat([]byte{b}, 32) }

func testMaster(t testing.TB) *Master {
	t.Helper()
	m, err := GenerateMaster(testRepoID(0xa1))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// The derived keys are part of the on-disk format: pin them against an
// independent HKDF implementation so an edited info string fails here.
func TestDerivedKeysMatchHKDF(t *testing.T) {
	t.Parallel()
	var ms MasterSecret
	for i := range ms {
		ms[i] = byte(i)
	}
	repoID := testRepoID(7)
	m, err := NewMaster(ms, repoID)
	if err != nil {
		t.Fatal(err)
	}
	want := func(info string) crypto.Key {
		var k crypto.Key
		if _, err := io.ReadFull(hkdf.New(sha256.New, ms[:], repoID, []byte(info)), k[:]); err != nil {
			t.Fatal(err)
		}
		return k
	}
	for _, c := range []struct {
		name string
		got  crypto.Key
		info string
	}{
		{"KEK", m.KEK(), "coffer/v1/kek"},
		{"BlobIDKey", m.BlobIDKey(), "coffer/v1/blob-id"},
		{"ChunkerKey", m.ChunkerKey(), "coffer/v1/chunker"},
	} {
		if c.got != want(c.info) {
			t.Errorf("%s does not equal HKDF-SHA-256(master, repoID, %q)", c.name, c.info)
		}
	}
	if m.KEK() == m.BlobIDKey() || m.KEK() == m.ChunkerKey() || m.BlobIDKey() == m.ChunkerKey() {
		t.Error("derived keys for different purposes coincide")
	}
}

func TestDerivedKeysDependOnRepoID(t *testing.T) {
	t.Parallel()
	ms, err := NewMasterSecret()
	if err != nil {
		t.Fatal(err)
	}
	a, _ := NewMaster(ms, testRepoID(1))
	b, _ := NewMaster(ms, testRepoID(2))
	if a.KEK() == b.KEK() || a.BlobIDKey() == b.BlobIDKey() || a.ChunkerKey() == b.ChunkerKey() {
		t.Error("the same master secret gives the same keys for two repositories")
	}
	if a.Equal(b) {
		t.Error("masters of different repositories compare equal")
	}
	c, _ := NewMaster(ms, testRepoID(1))
	if !a.Equal(c) {
		t.Error("identical masters compare unequal")
	}
}

func TestNewMasterSecretIsRandom(t *testing.T) {
	t.Parallel()
	a, err := NewMasterSecret()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := NewMasterSecret()
	if a == b || a == (MasterSecret{}) {
		t.Error("master secrets are not random")
	}
}

func TestNewMasterRejectsBadRepoID(t *testing.T) {
	t.Parallel()
	for _, n := range []int{0, 1, MinRepoIDSize - 1, MaxRepoIDSize + 1} {
		if _, err := NewMaster(MasterSecret{1}, make([]byte, n)); err == nil {
			t.Errorf("repository ID of %d bytes accepted", n)
		}
	}
	m, err := NewMaster(MasterSecret{1}, make([]byte, MinRepoIDSize))
	if err != nil {
		t.Fatal(err)
	}
	id := m.RepoID()
	id[0] = 9
	if m.RepoID()[0] != 0 {
		t.Error("RepoID returns the internal slice")
	}
}

func TestKEKLookup(t *testing.T) {
	t.Parallel()
	m := testMaster(t)
	k, err := m.KEKLookup()(KEKTerm)
	if err != nil || k != m.KEK() {
		t.Fatalf("KEKLookup(0) = %v, %v", k == m.KEK(), err)
	}
	if _, err := m.KEKLookup()(1); !errors.Is(err, ErrUnknownTerm) {
		t.Errorf("KEKLookup(1) = %v, want ErrUnknownTerm", err)
	}
}

func TestWipe(t *testing.T) {
	t.Parallel()
	m := testMaster(t)
	m.Wipe()
	if m.secret != (MasterSecret{}) {
		t.Error("Wipe left the secret in place")
	}
}
