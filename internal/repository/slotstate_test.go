package repository

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coffer-backup/coffer/internal/keyring"
	"github.com/coffer-backup/coffer/internal/storage"
	"github.com/coffer-backup/coffer/internal/storage/mem"
)

// TestOpenTriesLastSlotFirst: the client remembers in its state file which
// slot opened the repository and tries it first next time, so slots a
// hostile storage plants (here: cheaper ones that the cost order would try
// first) cost nothing once the client has opened the repository once
// (issue 10, item 6). A state file written before the field existed
// still reads.
func TestOpenTriesLastSlotFirst(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := mem.New()
	r, _, err := Init(ctx, st, InitOptions{Passphrase: []byte("pw"), KDF: keyring.KDFParams{Time: 2, MemoryKiB: 8 * 1024, Threads: 1}})
	if err != nil {
		t.Fatal(err)
	}
	genuine, err := r.CurrentSlot().Marshal()
	if err != nil {
		t.Fatal(err)
	}
	// Three planted copies with one pass: cheaper, listed first, and
	// failing to open once derived.
	cheap := strings.Replace(string(genuine), `"time":2`, `"time":1`, 1)
	for i := range 3 {
		h := storage.Handle{Kind: storage.KindKeys, Name: strings.Repeat(string(rune('0'+i)), 32)}
		if err := st.Save(ctx, h, []byte(cheap)); err != nil {
			t.Fatal(err)
		}
	}
	state := t.TempDir()
	old, _ := json.Marshal(map[string]any{"seen": []string{}, "term": 1})
	path := StateFile(state, r.ID())
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, old, 0o600); err != nil {
		t.Fatal(err)
	}
	open := func() int {
		n := 0
		o := OpenOptions{StateDir: state, BeforeKDF: func(int) { n++ }}
		got, err := OpenWith(ctx, st, []byte("pw"), o)
		if err != nil {
			t.Fatal(err)
		}
		if got.CurrentSlot().ID != r.CurrentSlot().ID {
			t.Fatalf("opened by slot %s", got.CurrentSlot().ID)
		}
		return n
	}
	if n := open(); n != 4 {
		t.Fatalf("first open ran Argon2id %d times, want 4 (three planted, cheaper slots first)", n)
	}
	if n := open(); n != 1 {
		t.Fatalf("second open ran Argon2id %d times, want 1 (the slot that opened last time)", n)
	}
	s, err := loadState(path)
	if err != nil || s.Slot != r.CurrentSlot().ID || s.Term != 1 {
		t.Fatalf("state %+v, %v", s, err)
	}
}
