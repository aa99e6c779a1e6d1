package keyring

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/coffer-backup/coffer/internal/crypto"
	"github.com/coffer-backup/coffer/internal/storage"
)

// cheapKDF is the cheapest parameter set the bounds allow. Tests pass it
// explicitly; production code only ever uses DefaultKDFParams.
var cheapKDF = KDFParams{Time: MinKDFTime, MemoryKiB: MinKDFMemoryKiB, Threads: 1}

var testInfo = SlotInfo{Created: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC), Host: "laptop", User: "ada"}

func newTestSlot(t testing.TB, m *Master, pass string, c crypto.Cipher) (*Slot, []byte) {
	t.Helper()
	s, err := NewPassphraseSlot(m, []byte(pass), c, cheapKDF, testInfo)
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return s, b
}

// newTestRecoverySlot makes a recovery slot with a fresh key, and its JSON.
func newTestRecoverySlot(t testing.TB, m *Master, c crypto.Cipher) (*Slot, []byte, RecoveryKey) {
	t.Helper()
	rk, err := NewRecoveryKey()
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewRecoverySlot(m, rk, c, testInfo)
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return s, b, rk
}

func mustParse(t testing.TB, id string, b []byte) *Slot {
	t.Helper()
	s, err := ParseSlot(id, b)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestPassphraseSlotRoundTrip(t *testing.T) {
	t.Parallel()
	for _, c := range []crypto.Cipher{crypto.AES256GCM, crypto.ChaCha20Poly1305} {
		t.Run(c.String(), func(t *testing.T) {
			m := testMaster(t)
			s, b := newTestSlot(t, m, "correct horse", c)
			if !ValidSlotID(s.ID) {
				t.Fatalf("bad slot ID %q", s.ID)
			}
			if h := s.Handle(); h.Kind != storage.KindKeys || storage.ValidateHandle(h) != nil {
				t.Fatalf("bad handle %v", h)
			}
			p := mustParse(t, s.ID, b)
			if p.Kind != SlotPassphrase || p.Cipher != c || p.Host != "laptop" || p.User != "ada" ||
				!p.Created.Equal(testInfo.Created) || p.KDF != cheapKDF {
				t.Fatalf("parsed slot differs: %+v", p)
			}
			got, which, err := Unlock([]*Slot{p}, []byte("correct horse"), m.RepoID())
			if err != nil {
				t.Fatal(err)
			}
			if !got.Equal(m) || which != p {
				t.Fatal("unlocked a different master or slot")
			}
			if got.KEK() != m.KEK() {
				t.Fatal("unlocked master derives a different KEK")
			}
		})
	}
}

func TestDefaultKDFParamsAreWritten(t *testing.T) {
	if testing.Short() {
		t.Skip("runs Argon2id with 64 MiB")
	}
	if d := DefaultKDFParams(); d != (KDFParams{Time: 3, MemoryKiB: 65536, Threads: 4}) {
		t.Fatalf("DefaultKDFParams = %+v", d)
	}
	m := testMaster(t)
	s, err := NewPassphraseSlot(m, []byte("pw"), crypto.AES256GCM, DefaultKDFParams(), SlotInfo{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	var raw map[string]any
	if err := json.Unmarshal(b, &raw); err != nil {
		t.Fatal(err)
	}
	kdf := raw["kdf"].(map[string]any)
	if kdf["alg"] != "argon2id" || kdf["time"] != 3.0 || kdf["memory_kib"] != 65536.0 || kdf["threads"] != 4.0 {
		t.Fatalf("kdf written as %v", kdf)
	}
	salt, err := base64.StdEncoding.DecodeString(kdf["salt"].(string))
	if err != nil || len(salt) != 32 {
		t.Fatalf("salt %q: %v", kdf["salt"], err)
	}
	if raw["version"] != 1.0 || raw["kind"] != "passphrase" || raw["cipher"] != "aes-256-gcm" {
		t.Fatalf("slot written as %s", b)
	}
	if time.Since(s.Created) > time.Minute || s.Created.Location() != time.UTC {
		t.Fatalf("zero SlotInfo.Created not replaced by now in UTC: %v", s.Created)
	}
	if _, _, err := Unlock([]*Slot{mustParse(t, s.ID, b)}, []byte("pw"), nil); err != nil {
		t.Fatal(err)
	}
}

func TestWrongPassphrase(t *testing.T) {
	t.Parallel()
	m := testMaster(t)
	s, _ := newTestSlot(t, m, "right", crypto.AES256GCM)
	for _, pw := range []string{"wrong", "", "right ", "Right"} {
		_, _, err := Unlock([]*Slot{s}, []byte(pw), nil)
		if !errors.Is(err, ErrWrongPassword) {
			t.Errorf("Unlock(%q) = %v, want ErrWrongPassword", pw, err)
		}
	}
}

func TestUnlockNoSlots(t *testing.T) {
	t.Parallel()
	if _, _, err := Unlock(nil, []byte("x"), nil); !errors.Is(err, ErrNoSlots) {
		t.Errorf("Unlock with no slots = %v", err)
	}
}

func TestEmptyPassphraseRefused(t *testing.T) {
	t.Parallel()
	if _, err := NewPassphraseSlot(testMaster(t), nil, crypto.AES256GCM, cheapKDF, testInfo); err == nil {
		t.Error("empty passphrase accepted")
	}
}

// mutate decodes a slot, lets f change it, and re-encodes it.
func mutate(t *testing.T, b []byte, f func(map[string]any)) []byte {
	t.Helper()
	var raw map[string]any
	if err := json.Unmarshal(b, &raw); err != nil {
		t.Fatal(err)
	}
	f(raw)
	out, err := json.Marshal(raw)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Every field is authenticated: a well-formed slot with any one field
// changed must parse but must not open.
func TestTamperedSlotFieldsDoNotOpen(t *testing.T) {
	t.Parallel()
	m := testMaster(t)
	s, b := newTestSlot(t, m, "pw", crypto.AES256GCM)
	kdf := func(f func(map[string]any)) func(map[string]any) {
		return func(r map[string]any) { f(r["kdf"].(map[string]any)) }
	}
	otherSalt := base64.StdEncoding.EncodeToString(make([]byte, 32))
	cases := map[string]func(map[string]any){
		"created":    func(r map[string]any) { r["created"] = "2025-03-01T12:00:01Z" },
		"host":       func(r map[string]any) { r["host"] = "laptop2" },
		"host empty": func(r map[string]any) { r["host"] = "" },
		"user":       func(r map[string]any) { r["user"] = "eve" },
		"repo_id":    func(r map[string]any) { r["repo_id"] = strings.Repeat("a2", 32) },
		"cipher":     func(r map[string]any) { r["cipher"] = "chacha20-poly1305" },
		"kdf time":   kdf(func(k map[string]any) { k["time"] = 2 }),
		"kdf memory": kdf(func(k map[string]any) { k["memory_kib"] = MinKDFMemoryKiB + 8 }),
		"kdf threads": kdf(func(k map[string]any) {
			k["threads"] = 2
		}),
		"kdf salt": kdf(func(k map[string]any) { k["salt"] = otherSalt }),
	}
	for name, f := range cases {
		t.Run(name, func(t *testing.T) {
			tb := mutate(t, b, f)
			p := mustParse(t, s.ID, tb)
			if _, _, err := Unlock([]*Slot{p}, []byte("pw"), nil); !errors.Is(err, ErrWrongPassword) {
				t.Fatalf("tampered slot: Unlock = %v, want ErrWrongPassword", err)
			}
		})
	}
	// The untampered slot still opens, so the failures above are the tampering.
	if _, _, err := Unlock([]*Slot{mustParse(t, s.ID, mutate(t, b, func(map[string]any) {}))}, []byte("pw"), nil); err != nil {
		t.Fatal(err)
	}
}

func TestTamperedKindDoesNotOpen(t *testing.T) {
	t.Parallel()
	m := testMaster(t)
	rk, err := NewRecoveryKey()
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewRecoverySlot(m, rk, crypto.AES256GCM, testInfo)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := s.Marshal()
	// Relabel the recovery slot as a passphrase slot and try the recovery
	// key's string as a passphrase: it must not open.
	tb := mutate(t, b, func(r map[string]any) {
		r["kind"] = "passphrase"
		r["kdf"] = map[string]any{"alg": "argon2id", "time": 1, "memory_kib": MinKDFMemoryKiB, "threads": 1,
			"salt": base64.StdEncoding.EncodeToString(make([]byte, 32))}
	})
	p := mustParse(t, s.ID, tb)
	if _, _, err := Unlock([]*Slot{p}, []byte(rk.String()), nil); !errors.Is(err, ErrWrongPassword) {
		t.Fatalf("relabelled slot: %v", err)
	}
}

func TestFlippedBitInWrappedDoesNotOpen(t *testing.T) {
	t.Parallel()
	m := testMaster(t)
	s, b := newTestSlot(t, m, "pw", crypto.ChaCha20Poly1305)
	for _, pos := range []int{0, 11, 12, 40, 75, 91} { // nonce, ciphertext, tag
		for _, bit := range []uint{0, 7} {
			tb := mutate(t, b, func(r map[string]any) {
				w, _ := base64.StdEncoding.DecodeString(r["wrapped"].(string))
				w[pos] ^= 1 << bit
				r["wrapped"] = base64.StdEncoding.EncodeToString(w)
			})
			p := mustParse(t, s.ID, tb)
			if _, _, err := Unlock([]*Slot{p}, []byte("pw"), nil); !errors.Is(err, ErrWrongPassword) {
				t.Fatalf("bit %d of byte %d flipped: %v", bit, pos, err)
			}
		}
	}
}

func TestSlotMovedDoesNotOpen(t *testing.T) {
	t.Parallel()
	m := testMaster(t)
	s, b := newTestSlot(t, m, "pw", crypto.AES256GCM)
	otherID, err := NewSlotID()
	if err != nil {
		t.Fatal(err)
	}
	// Copied to another slot name of the same repository.
	if _, _, err := Unlock([]*Slot{mustParse(t, otherID, b)}, []byte("pw"), nil); !errors.Is(err, ErrWrongPassword) {
		t.Errorf("slot under another ID: %v", err)
	}
	// Copied into another repository (its repo_id edited to match).
	other := testRepoID(0xb2)
	moved := mustParse(t, s.ID, mutate(t, b, func(r map[string]any) {
		r["repo_id"] = "b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2"
	}))
	if _, _, err := Unlock([]*Slot{moved}, []byte("pw"), other); !errors.Is(err, ErrWrongPassword) {
		t.Errorf("slot moved to another repository: %v", err)
	}
	// Copied unedited: skipped when the caller pins the repository ID.
	if _, _, err := Unlock([]*Slot{mustParse(t, s.ID, b)}, []byte("pw"), other); !errors.Is(err, ErrNoSlots) {
		t.Errorf("foreign slot with pinned repository ID: %v", err)
	}
}

func TestRecoverySlot(t *testing.T) {
	t.Parallel()
	m := testMaster(t)
	rs, rb, rk := newTestRecoverySlot(t, m, crypto.ChaCha20Poly1305)
	if strings.Contains(string(rb), `"kdf"`) {
		t.Errorf("recovery slot has a kdf: %s", rb)
	}
	ps, _ := newTestSlot(t, m, "pw", crypto.AES256GCM)
	slots := []*Slot{ps, mustParse(t, rs.ID, rb)}

	typed := strings.ToLower(strings.ReplaceAll(rk.String(), "-", " "))
	got, which, err := Unlock(slots, []byte(typed), m.RepoID())
	if err != nil {
		t.Fatal(err)
	}
	if !got.Equal(m) || which.ID != rs.ID {
		t.Fatal("recovery key opened the wrong thing")
	}
	if _, which, err := Unlock(slots, []byte("pw"), nil); err != nil || which.ID != ps.ID {
		t.Fatalf("passphrase after adding recovery slot: %v", err)
	}
	other, _ := NewRecoveryKey()
	if _, _, err := Unlock(slots, []byte(other.String()), nil); !errors.Is(err, ErrWrongPassword) {
		t.Fatalf("another recovery key: %v", err)
	}
	// A recovery slot is never tried with a passphrase that is not a key.
	if _, _, err := Unlock(slots[1:], []byte("pw"), nil); !errors.Is(err, ErrWrongPassword) || !strings.Contains(err.Error(), "tried 0 of 1") {
		t.Fatalf("recovery slot with a passphrase: %v", err)
	}
}

func TestPassphraseChange(t *testing.T) {
	t.Parallel()
	m := testMaster(t)
	old, _ := newTestSlot(t, m, "old", crypto.AES256GCM)
	unlocked, which, err := Unlock([]*Slot{old}, []byte("old"), nil)
	if err != nil {
		t.Fatal(err)
	}
	next, err := NewPassphraseSlot(unlocked, []byte("new"), crypto.AES256GCM, cheapKDF, testInfo)
	if err != nil {
		t.Fatal(err)
	}
	slots := []*Slot{old, next}
	if err := CheckRemovable(slots, which.ID); err != nil {
		t.Fatal(err)
	}
	slots = []*Slot{next}
	if err := CheckRemovable(slots, next.ID); !errors.Is(err, ErrLastSlot) {
		t.Errorf("removing the last slot: %v", err)
	}
	if err := CheckRemovable(slots, "nope"); err == nil {
		t.Error("removing a missing slot allowed")
	}
	if _, _, err := Unlock(slots, []byte("old"), nil); !errors.Is(err, ErrWrongPassword) {
		t.Errorf("old passphrase after change: %v", err)
	}
	got, _, err := Unlock(slots, []byte("new"), nil)
	if err != nil || !got.Equal(m) {
		t.Fatalf("new passphrase: %v", err)
	}
}

func TestCorruptSlotDoesNotBlockOthers(t *testing.T) {
	t.Parallel()
	m := testMaster(t)
	s, b := newTestSlot(t, m, "pw", crypto.AES256GCM)
	bad, _ := NewSlotID()
	slots, problems := ParseSlots([]SlotFile{{ID: bad, Data: []byte("{garbage")}, {ID: s.ID, Data: b}})
	if len(slots) != 1 || len(problems) != 1 || !errors.Is(problems[0], ErrInvalidSlot) {
		t.Fatalf("ParseSlots = %d slots, problems %v", len(slots), problems)
	}
	if !strings.Contains(problems[0].Error(), bad) {
		t.Errorf("problem does not name the slot: %v", problems[0])
	}
	// A slot that parses but fails to open does not block the next one.
	decoy, _ := newTestSlot(t, testMaster(t), "other", crypto.AES256GCM)
	if _, which, err := Unlock([]*Slot{decoy, slots[0]}, []byte("pw"), nil); err != nil || which.ID != s.ID {
		t.Fatalf("Unlock past a corrupt slot: %v", err)
	}
}

func TestHostileKDFParamsRejected(t *testing.T) {
	t.Parallel()
	m := testMaster(t)
	s, b := newTestSlot(t, m, "pw", crypto.AES256GCM)
	cases := map[string]map[string]any{
		"memory 5 GiB":     {"memory_kib": 5 * 1024 * 1024},
		"memory 2^32-1":    {"memory_kib": uint32(1<<32 - 1)},
		"memory 2^40":      {"memory_kib": uint64(1) << 40},
		"memory 1 KiB":     {"memory_kib": 1},
		"time 0":           {"time": 0},
		"time 101":         {"time": 101},
		"time negative":    {"time": -1},
		"time fraction":    {"time": 1.5},
		"threads 0":        {"threads": 0},
		"threads 256":      {"threads": 256},
		"cost":             {"time": 100, "memory_kib": MaxKDFMemoryKiB},
		"alg argon2i":      {"alg": "argon2i"},
		"salt short":       {"salt": base64.StdEncoding.EncodeToString(make([]byte, 16))},
		"salt not base64":  {"salt": "!!!!"},
		"salt with spaces": {"salt": " " + base64.StdEncoding.EncodeToString(make([]byte, 32))},
	}
	for name, change := range cases {
		t.Run(name, func(t *testing.T) {
			tb := mutate(t, b, func(r map[string]any) {
				k := r["kdf"].(map[string]any)
				for f, v := range change {
					k[f] = v
				}
			})
			if _, err := ParseSlot(s.ID, tb); !errors.Is(err, ErrInvalidSlot) {
				t.Fatalf("ParseSlot = %v, want ErrInvalidSlot", err)
			}
		})
	}
	// A Slot value edited in memory is not run either.
	hostile := *s
	hostile.KDF.MemoryKiB = MaxKDFMemoryKiB + 1
	if _, _, err := Unlock([]*Slot{&hostile}, []byte("pw"), nil); !errors.Is(err, ErrWrongPassword) || !strings.Contains(err.Error(), "tried 0") {
		t.Fatalf("in-memory hostile slot: %v", err)
	}
	if _, err := NewPassphraseSlot(m, []byte("pw"), crypto.AES256GCM, KDFParams{Time: 1, MemoryKiB: 1024, Threads: 1}, testInfo); err == nil {
		t.Error("weak KDF params accepted at creation")
	}
}

func TestMalformedSlotsRejected(t *testing.T) {
	t.Parallel()
	m := testMaster(t)
	s, b := newTestSlot(t, m, "pw", crypto.AES256GCM)
	set := func(f string, v any) []byte {
		return mutate(t, b, func(r map[string]any) { r[f] = v })
	}
	del := func(f string) []byte {
		return mutate(t, b, func(r map[string]any) { delete(r, f) })
	}
	str := string(b)
	cases := map[string]struct {
		id   string
		data []byte
	}{
		"empty":              {s.ID, nil},
		"not json":           {s.ID, []byte("hello")},
		"array":              {s.ID, []byte("[]")},
		"unknown field":      {s.ID, set("extra", 1)},
		"unknown kdf field":  {s.ID, mutate(t, b, func(r map[string]any) { r["kdf"].(map[string]any)["pepper"] = "x" })},
		"duplicate key":      {s.ID, []byte(`{"version":1,"version":1,` + str[len(`{"version":1,`):])},
		"trailing data":      {s.ID, append(append([]byte{}, b...), []byte(" {}")...)},
		"key case":           {s.ID, []byte(strings.Replace(str, `"host"`, `"Host"`, 1))},
		"key case duplicate": {s.ID, []byte(strings.Replace(str, `{`, `{"HOST":"x",`, 1))},
		"created year 0":     {s.ID, set("created", "0000-01-01T00:00:00Z")},
		"version 0":          {s.ID, set("version", 0)},
		"version 2":          {s.ID, set("version", 2)},
		"no version":         {s.ID, del("version")},
		"kind":               {s.ID, set("kind", "token")},
		"no kdf":             {s.ID, del("kdf")},
		"recovery with kdf":  {s.ID, set("kind", "recovery")},
		"cipher alias":       {s.ID, set("cipher", "aes")},
		"cipher empty":       {s.ID, set("cipher", "")},
		"created offset":     {s.ID, set("created", "2025-03-01T13:00:00+01:00")},
		"created fraction":   {s.ID, set("created", "2025-03-01T12:00:00.5Z")},
		"created garbage":    {s.ID, set("created", "yesterday")},
		"repo_id upper":      {s.ID, set("repo_id", strings.Repeat("A1", 32))},
		"repo_id short":      {s.ID, set("repo_id", "a1a1")},
		"repo_id odd":        {s.ID, set("repo_id", strings.Repeat("a", 33))},
		"host control":       {s.ID, set("host", "lap\x1b[2Jtop")},
		"host bidi":          {s.ID, set("host", "lap\u202etop")},
		"user long":          {s.ID, set("user", strings.Repeat("u", MaxInfoLength+1))},
		"wrapped short":      {s.ID, set("wrapped", base64.StdEncoding.EncodeToString(make([]byte, 91)))},
		"wrapped newline":    {s.ID, set("wrapped", base64.StdEncoding.EncodeToString(make([]byte, 46))+"\n"+base64.StdEncoding.EncodeToString(make([]byte, 46)))},
		"too large":          {s.ID, append(append([]byte{}, b...), make([]byte, MaxSlotSize)...)},
		"id uppercase":       {strings.ToUpper(s.ID), b},
		"id short":           {s.ID[:31], b},
		"id path":            {"../" + s.ID[3:], b},
		"deeply nested junk": {s.ID, []byte(strings.Repeat("[", 100))},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			if _, err := ParseSlot(c.id, c.data); !errors.Is(err, ErrInvalidSlot) {
				t.Fatalf("ParseSlot = %v, want ErrInvalidSlot", err)
			}
		})
	}
}

func TestMarshalRefusesInvalidSlot(t *testing.T) {
	t.Parallel()
	m := testMaster(t)
	s, _ := newTestSlot(t, m, "pw", crypto.AES256GCM)
	bad := *s
	bad.Host = "a\nb"
	if _, err := bad.Marshal(); !errors.Is(err, ErrInvalidSlot) {
		t.Errorf("Marshal of a slot with a bad host: %v", err)
	}
	var empty Slot
	if _, err := empty.Marshal(); !errors.Is(err, ErrInvalidSlot) {
		t.Errorf("Marshal of a zero slot: %v", err)
	}
}

func TestKDFParamsValidate(t *testing.T) {
	t.Parallel()
	if err := DefaultKDFParams().Validate(); err != nil {
		t.Errorf("default params invalid: %v", err)
	}
	if err := cheapKDF.Validate(); err != nil {
		t.Errorf("minimum params invalid: %v", err)
	}
	for _, p := range []KDFParams{
		{Time: 0, MemoryKiB: MinKDFMemoryKiB, Threads: 1},
		{Time: 1, MemoryKiB: MinKDFMemoryKiB - 1, Threads: 1},
		{Time: 1, MemoryKiB: MinKDFMemoryKiB, Threads: 0},
		{Time: MaxKDFTime + 1, MemoryKiB: MinKDFMemoryKiB, Threads: 1},
		{Time: 1, MemoryKiB: MaxKDFMemoryKiB + 1, Threads: 1},
		{Time: 17, MemoryKiB: MaxKDFMemoryKiB, Threads: 1},
	} {
		if p.Validate() == nil {
			t.Errorf("%+v accepted", p)
		}
	}
}

// A recovery (random) key, as scheduled backups use per host, opens its slot
// without running Argon2id: a passphrase slot whose parameters would need 4
// GiB and 16 passes sits first in the list and is never derived.
func TestRecoveryKeySkipsArgon2(t *testing.T) {
	m := testMaster(t)
	ps, pb := newTestSlot(t, m, "pw", crypto.AES256GCM)
	heavy := strings.Replace(string(pb), fmt.Sprintf(`"memory_kib":%d`, cheapKDF.MemoryKiB), `"memory_kib":4194304`, 1)
	heavy = strings.Replace(heavy, fmt.Sprintf(`"time":%d`, cheapKDF.Time), `"time":16`, 1)
	if heavy == string(pb) {
		t.Fatalf("slot JSON not rewritten: %s", pb)
	}
	rs, rb, rk := newTestRecoverySlot(t, m, crypto.AES256GCM)
	slots := []*Slot{mustParse(t, ps.ID, []byte(heavy)), mustParse(t, rs.ID, rb)}
	if slots[0].KDF.MemoryKiB != 4<<20 || slots[0].KDF.Time != 16 {
		t.Fatalf("heavy slot parsed as %+v", slots[0].KDF)
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	got, which, err := Unlock(slots, []byte(rk.String()), nil)
	runtime.ReadMemStats(&after)
	if err != nil || !got.Equal(m) || which.ID != rs.ID {
		t.Fatalf("recovery key: slot %v, err %v", which, err)
	}
	if n := after.TotalAlloc - before.TotalAlloc; n > 1<<20 {
		t.Fatalf("unlocking with a recovery key allocated %d bytes: Argon2id ran", n)
	}
}
