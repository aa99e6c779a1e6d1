package readonly_test

import (
	"context"
	"errors"
	"io"
	"path/filepath"
	"testing"

	"github.com/coffer-backup/coffer/internal/storage"
	"github.com/coffer-backup/coffer/internal/storage/local"
	"github.com/coffer-backup/coffer/internal/storage/mem"
	"github.com/coffer-backup/coffer/internal/storage/readonly"
	"github.com/coffer-backup/coffer/internal/storage/storagetest"
)

func TestContractMem(t *testing.T) {
	t.Parallel()
	storagetest.RunReadOnly(t, func(*testing.T) (storage.Storage, storage.Storage) {
		base := mem.New()
		return readonly.New(base), base
	})
}

func TestContractLocal(t *testing.T) {
	t.Parallel()
	storagetest.RunReadOnly(t, func(t *testing.T) (storage.Storage, storage.Storage) {
		base, err := local.Create(filepath.Join(t.TempDir(), "repo"))
		if err != nil {
			t.Fatal(err)
		}
		return readonly.New(base), base
	})
}

// remoteLike declares Properties, as a remote backend does.
type remoteLike struct{ *mem.Mem }

func (remoteLike) Properties() storage.Properties { return storage.Properties{Remote: true} }

func TestForwardsProperties(t *testing.T) {
	t.Parallel()
	ro := readonly.New(remoteLike{mem.New()})
	if p := storage.PropertiesOf(ro); p != (storage.Properties{Remote: true, ReadOnly: true}) {
		t.Errorf("Properties = %+v, want the inner's with ReadOnly", p)
	}
	if _, ok := ro.Unwrap().(remoteLike); !ok {
		t.Errorf("Unwrap = %T", ro.Unwrap())
	}
}

// spySource fails the test if a read-only storage reads it.
type spySource struct{ t *testing.T }

func (s spySource) WriteTo(io.Writer) (int64, error) {
	s.t.Error("a refused SaveStream read its source")
	return 0, nil
}

func TestSaveStreamDoesNotReadSource(t *testing.T) {
	t.Parallel()
	ro := readonly.New(mem.New())
	err := ro.SaveStream(context.Background(), storage.Handle{Kind: storage.KindData, Name: "a"}, spySource{t}, 10)
	if !errors.Is(err, storage.ErrForbidden) {
		t.Fatalf("SaveStream: %v, want ErrForbidden", err)
	}
}
