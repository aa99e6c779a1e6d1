package restorer

import (
	"errors"
	"math"
	"testing"

	"github.com/coffer-backup/coffer/internal/repository"
)

func TestContentItemBounds(t *testing.T) {
	t.Parallel()
	if n, err := holeLen(repository.ContentItem{Hole: math.MaxInt64}); err != nil || n != math.MaxInt64 {
		t.Fatalf("holeLen(MaxInt64) = %d, %v", n, err)
	}
	if _, err := holeLen(repository.ContentItem{Hole: math.MaxInt64 + 1}); !errors.Is(err, repository.ErrBadTree) {
		t.Fatalf("holeLen(MaxInt64+1) err = %v, want ErrBadTree", err)
	}
	if n, err := blobLen(repository.ContentItem{Size: repository.MaxBlobSize}); err != nil || n != repository.MaxBlobSize {
		t.Fatalf("blobLen(MaxBlobSize) = %d, %v", n, err)
	}
	if _, err := blobLen(repository.ContentItem{Size: repository.MaxBlobSize + 1}); !errors.Is(err, repository.ErrBadTree) {
		t.Fatalf("blobLen(MaxBlobSize+1) err = %v, want ErrBadTree", err)
	}
}
