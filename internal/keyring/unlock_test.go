package keyring

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/coffer-backup/coffer/internal/crypto"
)

// plantedSlot is slot JSON b, stored under slot ID n, with its Argon2id
// settings rewritten to (t, memKiB): it still parses, runs Argon2id with
// the new settings, and then fails to open. This is what a hostile storage
// can do to any slot it holds.
func plantedSlot(t *testing.T, n int, b []byte, time, memKiB uint32) *Slot {
	t.Helper()
	s := strings.Replace(string(b), fmt.Sprintf(`"memory_kib":%d`, cheapKDF.MemoryKiB), fmt.Sprintf(`"memory_kib":%d`, memKiB), 1)
	s = strings.Replace(s, fmt.Sprintf(`"time":%d`, cheapKDF.Time), fmt.Sprintf(`"time":%d`, time), 1)
	return mustParse(t, fmt.Sprintf("%032x", n), []byte(s))
}

// errAborted stops a derivation from the KDF hook, before Argon2id
// allocates its work area.
var errAborted = errors.New("argon2id aborted by the test")

// kdfLog records the work area of each derivation; a derivation above max
// bytes panics with errAborted instead of running.
type kdfLog struct {
	max   int
	sizes []int
}

func (l *kdfLog) hook(workArea int) {
	l.sizes = append(l.sizes, workArea)
	if workArea > l.max {
		panic(errAborted)
	}
}

// unlockLogged runs UnlockWithOptions with l's hook; aborted reports that a
// derivation above l.max was attempted.
func unlockLogged(slots []*Slot, secret string, o UnlockOptions, l *kdfLog) (m *Master, s *Slot, err error, aborted bool) {
	defer func() {
		if r := recover(); r != nil {
			if r != errAborted {
				panic(r)
			}
			aborted = true
		}
	}()
	o.BeforeKDF = l.hook
	m, s, err = UnlockWithOptions(slots, []byte(secret), o)
	return m, s, err, false
}

// TestPlantedExpensiveSlotsTriedLast: slots with costly Argon2id settings,
// listed before the genuine one, are not run when the genuine one opens
// (issue 10, item 6): cheap slots go first.
func TestPlantedExpensiveSlotsTriedLast(t *testing.T) {
	t.Parallel()
	m := testMaster(t)
	good, gb := newTestSlot(t, m, "pw", crypto.AES256GCM)
	var slots []*Slot
	for i := range 3 {
		slots = append(slots, plantedSlot(t, i+1, gb, 2, 64<<10))
	}
	slots = append(slots, mustParse(t, good.ID, gb))
	l := &kdfLog{max: int(cheapKDF.MemoryKiB) << 10}
	got, which, err, aborted := unlockLogged(slots, "pw", UnlockOptions{}, l)
	if aborted || err != nil || !got.Equal(m) || which.ID != good.ID {
		t.Fatalf("unlock: slot %v, err %v, derivations %v", which, err, l.sizes)
	}
	if len(l.sizes) != 1 {
		t.Fatalf("%d derivations (%v), want only the cheap genuine slot", len(l.sizes), l.sizes)
	}
}

// TestLastOpenedSlotTriedFirst: with Prefer naming the slot that opened
// last time, it is the only one run, even where cheaper planted slots
// would otherwise come first.
func TestLastOpenedSlotTriedFirst(t *testing.T) {
	t.Parallel()
	m := testMaster(t)
	dear := KDFParams{Time: 2, MemoryKiB: MinKDFMemoryKiB, Threads: 1}
	good, err := NewPassphraseSlot(m, []byte("pw"), crypto.AES256GCM, dear, testInfo)
	if err != nil {
		t.Fatal(err)
	}
	_, cheap := newTestSlot(t, testMaster(t), "other", crypto.AES256GCM)
	var slots []*Slot
	for i := range 3 {
		slots = append(slots, plantedSlot(t, i+1, cheap, cheapKDF.Time, cheapKDF.MemoryKiB))
	}
	slots = append(slots, good)
	l := &kdfLog{max: 1 << 30}
	if _, which, err, _ := unlockLogged(slots, "pw", UnlockOptions{}, l); err != nil || which != good || len(l.sizes) != 4 {
		t.Fatalf("without a preference: slot %v, err %v, %d derivations", which, err, len(l.sizes))
	}
	l = &kdfLog{max: 1 << 30}
	if _, which, err, _ := unlockLogged(slots, "pw", UnlockOptions{Prefer: good.ID}, l); err != nil || which != good || len(l.sizes) != 1 {
		t.Fatalf("preferring the last slot: slot %v, err %v, %d derivations", which, err, len(l.sizes))
	}
}

// TestSlotAboveMemoryLimitNotRun: a slot asking for 3 GiB is not derived
// unless the caller raises the limit, and the error says why.
func TestSlotAboveMemoryLimitNotRun(t *testing.T) {
	t.Parallel()
	m := testMaster(t)
	good, gb := newTestSlot(t, m, "pw", crypto.AES256GCM)
	huge := plantedSlot(t, 1, gb, 1, 3<<20)
	slots := []*Slot{huge, mustParse(t, good.ID, gb)}
	l := &kdfLog{max: DefaultUnlockMaxMemoryKiB << 10}
	_, _, err, aborted := unlockLogged(slots, "wrong", UnlockOptions{}, l)
	if aborted || !errors.Is(err, ErrWrongPassword) || !errors.Is(err, ErrKDFLimit) || !strings.Contains(err.Error(), huge.ID) {
		t.Fatalf("3 GiB slot: aborted %v, err %v", aborted, err)
	}
	// Raised explicitly, it is run (the test stops it before it allocates).
	l = &kdfLog{max: DefaultUnlockMaxMemoryKiB << 10}
	if _, _, _, aborted := unlockLogged(slots, "wrong", UnlockOptions{MaxMemoryKiB: 4 << 20}, l); !aborted {
		t.Fatalf("raised limit: the 3 GiB slot was not run (%v)", l.sizes)
	}
	// Time counts too: 4 passes over 2 GiB is 8 passes over 1 GiB; 9 are
	// above the limit.
	dear := plantedSlot(t, 2, gb, 9, 1<<20)
	l = &kdfLog{max: 0}
	_, _, err, aborted = unlockLogged([]*Slot{dear}, "wrong", UnlockOptions{}, l)
	if aborted || !errors.Is(err, ErrKDFLimit) {
		t.Fatalf("9 passes over 1 GiB: aborted %v, err %v", aborted, err)
	}
}

// TestUnlockTriesAtMostMaxSlots: a wrong passphrase runs Argon2id for at
// most DefaultUnlockMaxSlots slots, however many are planted.
func TestUnlockTriesAtMostMaxSlots(t *testing.T) {
	t.Parallel()
	_, b := newTestSlot(t, testMaster(t), "pw", crypto.AES256GCM)
	var slots []*Slot
	for i := range 3 * DefaultUnlockMaxSlots {
		slots = append(slots, plantedSlot(t, i+1, b, cheapKDF.Time, cheapKDF.MemoryKiB))
	}
	l := &kdfLog{max: 1 << 30}
	_, _, err, _ := unlockLogged(slots, "wrong", UnlockOptions{}, l)
	if !errors.Is(err, ErrWrongPassword) || len(l.sizes) != DefaultUnlockMaxSlots || !strings.Contains(err.Error(), "gave up") {
		t.Fatalf("%d derivations, err %v", len(l.sizes), err)
	}
}

// TestRecoveryKeyNeverRunsArgon2: a recovery key that opens no slot is
// refused without deriving any passphrase slot.
func TestRecoveryKeyNeverRunsArgon2(t *testing.T) {
	t.Parallel()
	m := testMaster(t)
	_, gb := newTestSlot(t, m, "pw", crypto.AES256GCM)
	_, rb, _ := newTestRecoverySlot(t, m, crypto.AES256GCM)
	other, err := NewRecoveryKey()
	if err != nil {
		t.Fatal(err)
	}
	slots := []*Slot{mustParse(t, strings.Repeat("1", 32), gb), mustParse(t, strings.Repeat("2", 32), rb)}
	l := &kdfLog{max: 1 << 30}
	_, _, err, _ = unlockLogged(slots, other.String(), UnlockOptions{}, l)
	if !errors.Is(err, ErrWrongPassword) || len(l.sizes) != 0 {
		t.Fatalf("foreign recovery key: %d derivations, err %v", len(l.sizes), err)
	}
}
