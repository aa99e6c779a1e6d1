package keyring

import (
	"bytes"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/coffer-backup/coffer/internal/crypto"
)

func newEscrowIdentity(t testing.TB) *EscrowIdentity {
	t.Helper()
	id, err := GenerateEscrowIdentity()
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// newTestEscrowSlot makes an escrow slot sealed to id, and its JSON.
func newTestEscrowSlot(t testing.TB, m *Master, id *EscrowIdentity) (*Slot, []byte) {
	t.Helper()
	s, err := NewEscrowSlot(m, id.Recipient(), testInfo)
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return s, b
}

func unlockEscrow(slots []*Slot, id *EscrowIdentity) (*Master, *Slot, error) {
	return UnlockWithOptions(slots, nil, UnlockOptions{Escrow: id})
}

func TestEscrowSlotRoundTrip(t *testing.T) {
	t.Parallel()
	m := testMaster(t)
	id := newEscrowIdentity(t)
	s, b := newTestEscrowSlot(t, m, id)
	if len(b) > MaxSlotSize {
		t.Fatalf("slot is %d bytes", len(b))
	}
	p := mustParse(t, s.ID, b)
	if p.Kind != SlotEscrow || p.Cipher != EscrowCipher || p.Recipient != id.Recipient().String() ||
		p.Host != "laptop" || p.User != "ada" || !p.Created.Equal(testInfo.Created) || p.KDF != (KDFParams{}) {
		t.Fatalf("parsed slot differs: %+v", p)
	}
	if !strings.Contains(string(b), `"recipient":"age1`) || strings.Contains(string(b), `"kdf"`) {
		t.Fatalf("unexpected JSON: %s", b)
	}
	got, which, err := unlockEscrow([]*Slot{p}, id)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Equal(m) || which.ID != s.ID {
		t.Fatal("escrow slot opened to the wrong master")
	}
}

// The largest slot (host and user at their limits) stays within the slot
// and age-file limits.
func TestEscrowSlotLargestFits(t *testing.T) {
	t.Parallel()
	info := testInfo
	info.Host = strings.Repeat("h", MaxInfoLength)
	info.User = strings.Repeat("é", MaxInfoLength/2)
	s, err := NewEscrowSlot(testMaster(t), newEscrowIdentity(t).Recipient(), info)
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if len(b) > MaxSlotSize || len(s.wrapped) > MaxEscrowWrapped {
		t.Fatalf("slot %d bytes, age file %d", len(b), len(s.wrapped))
	}
	mustParse(t, s.ID, b)
}

func TestWrongEscrowKey(t *testing.T) {
	t.Parallel()
	m := testMaster(t)
	s, b := newTestEscrowSlot(t, m, newEscrowIdentity(t))
	_, _, err := unlockEscrow([]*Slot{mustParse(t, s.ID, b)}, newEscrowIdentity(t))
	if !errors.Is(err, ErrWrongEscrowKey) || !errors.Is(err, ErrWrongPassword) {
		t.Fatalf("wrong identity: %v, want ErrWrongEscrowKey matching ErrWrongPassword", err)
	}
	if errors.Is(err, ErrEscrowBinding) {
		t.Fatalf("a wrong key is reported as tampering: %v", err)
	}
}

// An escrow identity tries only escrow slots, and passphrases and recovery
// keys never open an escrow slot.
func TestEscrowOnlyOpensEscrowSlots(t *testing.T) {
	t.Parallel()
	m := testMaster(t)
	id := newEscrowIdentity(t)
	es, eb := newTestEscrowSlot(t, m, id)
	rs, rb, rk := newTestRecoverySlot(t, m, crypto.AES256GCM)
	ps, pb := newTestSlot(t, m, "pw", crypto.AES256GCM)
	slots := []*Slot{mustParse(t, ps.ID, pb), mustParse(t, rs.ID, rb), mustParse(t, es.ID, eb)}
	var kdfRuns int
	_, which, err := UnlockWithOptions(slots, []byte("pw"), UnlockOptions{Escrow: id, BeforeKDF: func(int) { kdfRuns++ }})
	if err != nil || which.ID != es.ID || kdfRuns != 0 {
		t.Fatalf("escrow unlock: slot %v, %d Argon2id runs, %v", which, kdfRuns, err)
	}
	if _, _, err := unlockEscrow(slots[:2], id); !errors.Is(err, ErrWrongEscrowKey) {
		t.Fatalf("no escrow slot: %v", err)
	}
	if _, which, err := Unlock(slots, []byte(rk.String()), nil); err != nil || which.ID != rs.ID {
		t.Fatalf("recovery key: %v %v", which, err)
	}
	if _, _, err := Unlock(slots[2:], []byte(id.Recipient().String()), nil); !errors.Is(err, ErrWrongPassword) {
		t.Fatalf("a passphrase opened an escrow slot: %v", err)
	}
}

// Every field is bound: a slot with any field edited parses, and fails to
// open with ErrEscrowBinding even with the right identity.
func TestEscrowSlotTamperedFieldsRefused(t *testing.T) {
	t.Parallel()
	m := testMaster(t)
	id := newEscrowIdentity(t)
	s, b := newTestEscrowSlot(t, m, id)
	cases := map[string]func(map[string]any){
		"created": func(r map[string]any) { r["created"] = "2025-03-01T12:00:01Z" },
		"host":    func(r map[string]any) { r["host"] = "laptoq" },
		"user":    func(r map[string]any) { r["user"] = "eve" },
		"repo_id": func(r map[string]any) { r["repo_id"] = strings.Repeat("b2", 32) },
		"recipient": func(r map[string]any) {
			r["recipient"] = newEscrowIdentity(t).Recipient().String()
		},
	}
	for name, f := range cases {
		t.Run(name, func(t *testing.T) {
			p := mustParse(t, s.ID, mutate(t, b, f))
			_, _, err := unlockEscrow([]*Slot{p}, id)
			if !errors.Is(err, ErrEscrowBinding) || !errors.Is(err, ErrWrongPassword) {
				t.Fatalf("tampered slot: %v, want ErrEscrowBinding", err)
			}
		})
	}
	// The age file's size follows from the fields: an edit that changes a
	// field's length is refused before any key is tried.
	if _, err := ParseSlot(s.ID, mutate(t, b, func(r map[string]any) { r["host"] = "laptop2" })); !errors.Is(err, ErrInvalidSlot) {
		t.Fatalf("host of another length: %v", err)
	}
	other, err := NewSlotID()
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := unlockEscrow([]*Slot{mustParse(t, other, b)}, id); !errors.Is(err, ErrEscrowBinding) {
		t.Fatalf("renamed slot: %v", err)
	}
	if _, _, err := unlockEscrow([]*Slot{mustParse(t, s.ID, mutate(t, b, func(map[string]any) {}))}, id); err != nil {
		t.Fatalf("untampered slot: %v", err)
	}
}

// Flipping any byte of the age file (header, stanza, MAC, nonce, payload)
// either fails parsing or fails to open; never opens.
func TestEscrowSlotFlippedBytes(t *testing.T) {
	t.Parallel()
	m := testMaster(t)
	id := newEscrowIdentity(t)
	s, _ := newTestEscrowSlot(t, m, id)
	for pos := 0; pos < len(s.wrapped); pos += 7 {
		w := bytes.Clone(s.wrapped)
		w[pos] ^= 0x01
		p := *s
		p.wrapped = w
		if p.checkEscrowWrapped() != nil {
			continue
		}
		if _, _, err := unlockEscrow([]*Slot{&p}, id); err == nil {
			t.Fatalf("byte %d flipped: slot still opens", pos)
		}
	}
}

// A slot copied unedited from another repository opens (it is that
// repository's), and Verify, which the repository layer sets, refuses it
// with a clear error while the real slot still opens.
func TestEscrowSlotFromAnotherRepository(t *testing.T) {
	t.Parallel()
	id := newEscrowIdentity(t)
	mine := testMaster(t)
	foreign, err := NewMaster(MasterSecret{9, 9}, testRepoID(0xc3))
	if err != nil {
		t.Fatal(err)
	}
	fs, fb := newTestEscrowSlot(t, foreign, id)
	ms, mb := newTestEscrowSlot(t, mine, id)
	verify := func(m *Master) error {
		if !m.Equal(mine) {
			return errors.New("config does not open")
		}
		return nil
	}
	slots := []*Slot{mustParse(t, fs.ID, fb), mustParse(t, ms.ID, mb)}
	got, which, err := UnlockWithOptions(slots, nil, UnlockOptions{Escrow: id, Verify: verify})
	if err != nil || which.ID != ms.ID || !got.Equal(mine) {
		t.Fatalf("real slot behind a copied one: %v %v", which, err)
	}
	_, _, err = UnlockWithOptions(slots[:1], nil, UnlockOptions{Escrow: id, Verify: verify})
	if err == nil || !strings.Contains(err.Error(), "belongs to another repository") || !strings.Contains(err.Error(), fs.ID) {
		t.Fatalf("copied slot alone: %v", err)
	}
}

func TestMalformedEscrowSlotsRejected(t *testing.T) {
	t.Parallel()
	m := testMaster(t)
	id := newEscrowIdentity(t)
	s, b := newTestEscrowSlot(t, m, id)
	_, pb := newTestSlot(t, m, "pw", crypto.AES256GCM)
	// A scrypt (passphrase) age file of the right size must be refused at
	// parse time: an escrow unlock never runs a KDF.
	var scryptFile bytes.Buffer
	sr, err := age.NewScryptRecipient("pw")
	if err != nil {
		t.Fatal(err)
	}
	sr.SetWorkFactor(1)
	w, _ := age.Encrypt(&scryptFile, sr)
	_, _ = w.Write(append(s.aad(), make([]byte, MasterSecretSize)...))
	_ = w.Close()
	twoStanzas := func() string {
		var out bytes.Buffer
		w, _ := age.Encrypt(&out, id.Recipient().r, newEscrowIdentity(t).Recipient().r)
		_, _ = w.Write(append(s.aad(), make([]byte, MasterSecretSize)...))
		_ = w.Close()
		return base64.StdEncoding.EncodeToString(out.Bytes())
	}()
	cases := map[string][]byte{
		"no recipient":        mutate(t, b, func(r map[string]any) { delete(r, "recipient") }),
		"null recipient":      mutate(t, b, func(r map[string]any) { r["recipient"] = nil }),
		"bad recipient":       mutate(t, b, func(r map[string]any) { r["recipient"] = "age1qqqq" }),
		"upper recipient":     mutate(t, b, func(r map[string]any) { r["recipient"] = strings.ToUpper(r["recipient"].(string)) }),
		"aes cipher":          mutate(t, b, func(r map[string]any) { r["cipher"] = "aes-256-gcm" }),
		"with kdf":            mutate(t, b, func(r map[string]any) { r["kdf"] = map[string]any{} }),
		"recipient elsewhere": mutate(t, pb, func(r map[string]any) { r["recipient"] = id.Recipient().String() }),
		"short wrapped":       mutate(t, b, func(r map[string]any) { r["wrapped"] = base64.StdEncoding.EncodeToString(s.wrapped[:len(s.wrapped)-1]) }),
		"long wrapped": mutate(t, b, func(r map[string]any) {
			r["wrapped"] = base64.StdEncoding.EncodeToString(append(bytes.Clone(s.wrapped), 0))
		}),
		"not age":        mutate(t, b, func(r map[string]any) { r["wrapped"] = base64.StdEncoding.EncodeToString(make([]byte, 92)) }),
		"scrypt":         mutate(t, b, func(r map[string]any) { r["wrapped"] = base64.StdEncoding.EncodeToString(scryptFile.Bytes()) }),
		"two recipients": mutate(t, b, func(r map[string]any) { r["wrapped"] = twoStanzas }),
		"armored": mutate(t, b, func(r map[string]any) {
			r["wrapped"] = base64.StdEncoding.EncodeToString([]byte("-----BEGIN AGE ENCRYPTED FILE-----\n"))
		}),
		"huge wrapped": mutate(t, b, func(r map[string]any) {
			r["wrapped"] = base64.StdEncoding.EncodeToString(make([]byte, MaxEscrowWrapped+1))
		}),
	}
	for name, data := range cases {
		t.Run(name, func(t *testing.T) {
			if _, err := ParseSlot(s.ID, data); !errors.Is(err, ErrInvalidSlot) {
				t.Fatalf("accepted: %v", err)
			}
		})
	}
}

func TestEscrowKeyFiles(t *testing.T) {
	t.Parallel()
	id := newEscrowIdentity(t)
	created := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	file := id.MarshalFile(created)
	if !strings.Contains(string(file), "# public key: "+id.Recipient().String()+"\n") ||
		!strings.Contains(string(file), "# created: 2026-12-05T10:00:00Z\n") {
		t.Fatalf("identity file: %s", file)
	}
	back, err := ParseEscrowIdentity(file)
	if err != nil || back.Recipient().String() != id.Recipient().String() {
		t.Fatalf("identity file round trip: %v", err)
	}
	// age's own parser reads our file: the format is age's.
	if ids, err := age.ParseIdentities(bytes.NewReader(file)); err != nil || len(ids) != 1 {
		t.Fatalf("age cannot read the identity file: %v", err)
	}
	r, err := ParseEscrowRecipientFile([]byte("# comment\n\n" + id.Recipient().String() + "\n"))
	if err != nil || r.String() != id.Recipient().String() {
		t.Fatalf("recipient file: %v", err)
	}
	if fp := r.Fingerprint(); !strings.HasPrefix(fp, "SHA256:") || len(fp) != 7+43 || fp == newEscrowIdentity(t).Recipient().Fingerprint() {
		t.Fatalf("fingerprint %q", fp)
	}
	other := newEscrowIdentity(t)
	bad := map[string][]byte{
		"empty":          nil,
		"two keys":       append(bytes.Clone(file), other.MarshalFile(created)...),
		"public as priv": []byte(id.Recipient().String() + "\n"),
		"garbage":        []byte("AGE-SECRET-KEY-1XYZ\n"),
		"too big":        bytes.Repeat([]byte("#"), MaxEscrowKeyFile+1),
	}
	for name, data := range bad {
		if _, err := ParseEscrowIdentity(data); !errors.Is(err, ErrBadEscrowKey) {
			t.Errorf("identity %s: %v", name, err)
		}
	}
	badPub := map[string][]byte{
		"empty":         nil,
		"two":           []byte(id.Recipient().String() + "\n" + other.Recipient().String() + "\n"),
		"private":       []byte(id.id.String() + "\n"),
		"truncated key": []byte(id.Recipient().String()[:40] + "\n"),
		"too big":       bytes.Repeat([]byte("#"), MaxEscrowKeyFile+1),
	}
	for name, data := range badPub {
		if _, err := ParseEscrowRecipientFile(data); !errors.Is(err, ErrBadEscrowKey) {
			t.Errorf("public key %s: %v", name, err)
		}
	}
	if _, err := NewEscrowSlot(testMaster(t), EscrowRecipient{}, testInfo); !errors.Is(err, ErrBadEscrowKey) {
		t.Errorf("zero recipient: %v", err)
	}
}
