package check

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/coffer-backup/coffer/internal/storage"
)

// hugePackStorage is a storage that says one pack holds 10 GB, as a hostile
// storage (or a 10 GB sparse file) would, and fails the test if anything
// then tries to read more than 1 GiB of an object at once.
type hugePackStorage struct {
	storage.Storage
	t    *testing.T
	pack string
}

const tenGB = 10 << 30

func (s hugePackStorage) List(ctx context.Context, k storage.Kind, fn func(storage.FileInfo) error) error {
	return s.Storage.List(ctx, k, func(fi storage.FileInfo) error {
		if k == storage.KindData && fi.Name == s.pack {
			fi.Size = tenGB
		}
		return fn(fi)
	})
}

func (s hugePackStorage) Stat(ctx context.Context, h storage.Handle) (storage.FileInfo, error) {
	fi, err := s.Storage.Stat(ctx, h)
	if err == nil && h.Kind == storage.KindData && h.Name == s.pack {
		fi.Size = tenGB
	}
	return fi, err
}

func (s hugePackStorage) Load(ctx context.Context, h storage.Handle, off, n int64) ([]byte, error) {
	if n < 0 && h.Kind == storage.KindData && h.Name == s.pack {
		n = tenGB - off
	}
	if n > 1<<30 {
		s.t.Errorf("read %d bytes of %s at once", n, h)
		return nil, errors.New("the test refused a huge read")
	}
	return s.Storage.Load(ctx, h, off, n)
}

// TestReadDataRefusesHugePack: check --read-data meets a pack of 10 GB
// (issue 10, item 3). It reports that pack damaged, naming the limit,
// without reading it, and checks the other packs.
func TestReadDataRefusesHugePack(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	var packs []string
	err := f.st.List(context.Background(), storage.KindData, func(fi storage.FileInfo) error {
		packs = append(packs, fi.Name)
		return nil
	})
	if err != nil || len(packs) < 2 {
		t.Fatalf("fixture has %d packs: %v", len(packs), err)
	}
	st := hugePackStorage{Storage: f.st, t: t, pack: packs[0]}
	res := runCheck(t, st, Options{ReadData: true})
	if len(res.DamagedPacks) != 1 || res.DamagedPacks[0].Pack.String() != packs[0] ||
		!strings.Contains(res.DamagedPacks[0].Problem, "larger than the limit") {
		t.Fatalf("huge pack not reported as such: %+v", res.DamagedPacks)
	}
	if res.PacksRead != len(packs) {
		t.Fatalf("read %d of %d packs", res.PacksRead, len(packs))
	}
}
