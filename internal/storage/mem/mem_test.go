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
