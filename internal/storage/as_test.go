package storage_test

import (
	"testing"

	"github.com/coffer-backup/coffer/internal/storage"
)

// wrapper is a decorator declaring ro as its ReadOnly property.
type wrapper struct {
	storage.Storage
	ro bool
}

func (w wrapper) Unwrap() storage.Storage { return w.Storage }
func (w wrapper) Properties() storage.Properties {
	return storage.Properties{ReadOnly: w.ro}
}

// special is a backend with a method of its own.
type special struct{ storage.Storage }

func (special) Special() {}

func TestAs(t *testing.T) {
	type specialer interface{ Special() }
	base := special{}
	if _, ok := storage.As[specialer](wrapper{Storage: wrapper{Storage: base}}); !ok {
		t.Error("As did not find the backend's method through two decorators")
	}
	if _, ok := storage.As[specialer](wrapper{Storage: base, ro: true}); ok {
		t.Error("As looked past a read-only decorator")
	}
	if _, ok := storage.As[specialer](wrapper{Storage: wrapper{}}); ok {
		t.Error("As found a method nobody has")
	}
}
