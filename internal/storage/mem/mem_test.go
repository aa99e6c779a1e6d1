package mem_test

import (
	"context"
	"errors"
	"testing"

	"github.com/coffer-backup/coffer/internal/storage"
	"github.com/coffer-backup/coffer/internal/storage/mem"
	"github.com/coffer-backup/coffer/internal/storage/storagetest"
)

func TestContract(t *testing.T) {
	storagetest.Run(t, func(*testing.T) storage.Storage { return mem.New() })
}

func TestLocation(t *testing.T) {
	m := mem.New()
	if m.Location() != "mem:" {
		t.Errorf("Location = %q", m.Location())
	}
	// Close does not lose objects: tests may inspect them through Reopen.
	h := storage.Handle{Kind: storage.KindData, Name: "x"}
	if err := m.Save(context.Background(), h, []byte("1")); err != nil {
		t.Fatal(err)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Load(context.Background(), h, 0, -1); !errors.Is(err, storage.ErrClosed) {
		t.Errorf("Load after Close: %v, want ErrClosed", err)
	}
	again := m.Reopen()
	if b, err := again.Load(context.Background(), h, 0, -1); err != nil || string(b) != "1" {
		t.Errorf("Load after Reopen = %q, %v", b, err)
	}
	if err := again.Save(context.Background(), storage.Handle{Kind: storage.KindData, Name: "y"}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Reopen().Stat(context.Background(), storage.Handle{Kind: storage.KindData, Name: "y"}); err != nil {
		t.Errorf("an object saved after Reopen is not shared: %v", err)
	}
}

// TestClone: a clone starts with the same objects, and saves and removes
// in either do not show in the other, nor does changing a loaded copy.
func TestClone(t *testing.T) {
	ctx := context.Background()
	m := mem.New()
	a := storage.Handle{Kind: storage.KindData, Name: "a"}
	b := storage.Handle{Kind: storage.KindData, Name: "b"}
	if err := m.Save(ctx, a, []byte("1")); err != nil {
		t.Fatal(err)
	}
	c := m.Clone()
	got, err := c.Load(ctx, a, 0, -1)
	if err != nil || string(got) != "1" {
		t.Fatalf("clone Load = %q, %v", got, err)
	}
	got[0] = 'x'
	if err := c.Remove(ctx, a); err != nil {
		t.Fatal(err)
	}
	if err := c.Save(ctx, b, []byte("2")); err != nil {
		t.Fatal(err)
	}
	if got, err := m.Load(ctx, a, 0, -1); err != nil || string(got) != "1" {
		t.Errorf("original after the clone's remove: %q, %v", got, err)
	}
	if _, err := m.Stat(ctx, b); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("the clone's save shows in the original: %v", err)
	}
	if err := m.Remove(ctx, a); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Stat(ctx, b); err != nil {
		t.Errorf("clone lost its own object: %v", err)
	}
}
